package edgekit.android

import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Test

class SmootherLatencyTest {
    @Test
    fun smootherMatchesEdgekitSmoothing() {
        for (case in Fixtures.list(Fixtures.index["smoothing"]).map { Fixtures.obj(it) }) {
            val logits = Fixtures.list(case["logits"]).map { row -> Fixtures.list(row).map { (it as Number).toFloat() }.toFloatArray() }
            val window = Fixtures.num(case["window"]).toInt()
            val agree = Fixtures.num(case["agree"]).toInt()
            val want = Fixtures.list(case["labels"]).map { (it as Number).toInt() }
            assertEquals("window $window agree $agree", want, Smoother.smooth(logits, window, agree).toList())
        }
    }

    @Test
    fun confidenceIsASoftmaxOfTheWindowMean() {
        val s = Smoother(window = 2, agree = 1)
        assertEquals(Smoother.NO_LABEL.toDouble(), -1.0, 0.0)
        s.update(floatArrayOf(0f, 2f))
        val label = s.update(floatArrayOf(0f, 0f))
        assertEquals(1, label)
        assertEquals(Math.E / (1 + Math.E), s.confidence(1), 1e-12)  // mean logits (0, 1)
        assertEquals(0.0, s.confidence(Smoother.NO_LABEL), 0.0)
        s.reset()
        assertEquals(Smoother.NO_LABEL, Smoother(3, 2).update(floatArrayOf(1f, 0f)))
    }

    @Test
    fun latencyStatisticsMatchEdgekit() {
        for (case in Fixtures.list(Fixtures.index["latency"]).map { Fixtures.obj(it) }) {
            val x = Fixtures.list(case["latencies_ms"]).map { (it as Number).toDouble() }.toDoubleArray()
            val want = Fixtures.obj(case["summary"])
            val got = LatencyStats.summarize(x)
            assertEquals(want.keys, got.keys)
            for ((k, v) in want) {
                val g = got[k]
                when (v) {
                    is Boolean -> assertEquals("$k of ${x.size}", v, g)
                    is Number -> assertEquals("$k of ${x.size}", v.toDouble(), (g as Number).toDouble(),
                        1e-12 * Math.max(1.0, Math.abs(v.toDouble())))
                    else -> assertEquals(k, v, g)
                }
            }
        }
    }

    @Test
    fun liveWindowKeepsTheLastValues() {
        val w = LatencyWindow(4)
        assertEquals(null, w.p50())
        for (v in listOf(100.0, 1.0, 2.0, 3.0, 4.0)) w.add(v)
        assertEquals(listOf(1.0, 2.0, 3.0, 4.0), w.values().toList())
        assertEquals(2.5, w.p50()!!, 1e-12)
        assertEquals(3.7, w.p90()!!, 1e-12)
    }

    @Test
    fun jsonRoundTrip() {
        val doc = linkedMapOf("a" to listOf(1, 2.5, -3e-5, null, true), "s" to "q\"u\\o\nte\u0001", "n" to Double.NaN,
            "e" to emptyMap<String, Any>(), "l" to emptyList<Any>())
        val back = Fixtures.obj(Json.parse(Json.write(doc)))
        assertEquals(listOf(1L, 2.5, -3e-5, null, true), back["a"])
        assertEquals(doc["s"], back["s"])
        assertEquals(null, back["n"])
        assertTrue(Json.parse(Json.write(doc, indent = 0)) is Map<*, *>)
        assertEquals(listOf(1.5, "\u00e9"), Json.parse("[1.5, \"\\u00e9\"]"))
    }
}

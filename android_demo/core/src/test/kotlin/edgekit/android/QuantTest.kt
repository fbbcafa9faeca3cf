package edgekit.android

import org.junit.Assert.assertEquals
import org.junit.Assert.assertNotNull
import org.junit.Assert.assertNull
import org.junit.Test

/** int8 manifests: the quantization fields edgekit writes, and its quantize / dequantize. */
class QuantTest {
    @Test
    fun readsTheInt8FieldsEdgekitWrites() {
        val raw = Fixtures.obj(Json.parse(Fixtures.file("manifest_int8.json").readText()))
        val m = Fixtures.manifest("manifest_int8.json")
        val fq = Fixtures.obj(Fixtures.obj(raw["frame_input"])["quantization"])
        val frameQuant = m.frameInput.quant ?: throw AssertionError("the int8 frame input has no quantization")
        assertEquals(Fixtures.num(fq["scale"]), frameQuant.scale, 0.0)
        assertEquals(Fixtures.num(fq["zero_point"]).toLong(), frameQuant.zeroPoint)
        assertNotNull(m.logitsOutput.quant)
        for ((s, r) in m.states.zip(Fixtures.list(raw["states"]).map { Fixtures.obj(it) })) {
            val q = Fixtures.obj(r["quantization"])
            for ((mine, side) in listOf(s.inputQuant to "input", s.outputQuant to "output")) {
                val want = Fixtures.obj(q[side])
                assertEquals("${s.input} $side", Fixtures.num(want["scale"]), mine!!.scale, 0.0)
                assertEquals("${s.input} $side", Fixtures.num(want["zero_point"]).toLong(), mine.zeroPoint)
            }
            // zeros in float are the zero point in int8: the state's native init
            assertEquals(Fixtures.num(r["init_native"]).toInt(), s.inputQuant!!.quantize(0f, -128, 127))
        }
        assertNull(Fixtures.manifest().frameInput.quant)
    }

    @Test
    fun quantizesAsEdgekitDoes() {
        for (case in Fixtures.list(Fixtures.index["quantize"]).map { Fixtures.obj(it) }) {
            val q = Quant(Fixtures.num(case["scale"]), Fixtures.num(case["zero_point"]).toLong())
            val x = Fixtures.list(case["x"]).map { (it as Number).toFloat() }
            val want = Fixtures.list(case["q"]).map { (it as Number).toInt() }
            val back = Fixtures.list(case["dq"]).map { (it as Number).toFloat() }
            assertEquals("scale ${q.scale}", want, x.map { q.quantize(it, -128, 127) })
            assertEquals("scale ${q.scale}", back, want.map { q.dequantize(it) })
        }
    }
}

package edgekit.android

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertTrue
import org.junit.Test

/** States by name, zeros first, fed back: replayed against the real .tflite run by edgekit. */
class StreamStateTest {
    private val m = Fixtures.manifest()
    private val steps = Fixtures.list(Fixtures.obj(Fixtures.index["stream"])["steps"]).map { Fixtures.obj(it) }

    private fun tensors(step: Map<String, Any?>, side: String): Map<String, FloatArray> =
        Fixtures.obj(step[side]).mapValues { Fixtures.floats(it.value as String) }

    /**
     * The app's loop without the interpreter: camera frames arrive one by one, the reset rule
     * picks the ones to process, each is preprocessed and fed with the states by name; at every
     * step the frame and the states must be exactly what edgekit fed the real .tflite, and the
     * outputs it returned are fed back.
     */
    @Test
    fun replaysTheRealStreamFromCameraFrames() {
        val stream = Fixtures.obj(Fixtures.index["stream"])
        val height = Fixtures.num(stream["height"]).toInt()
        val width = Fixtures.num(stream["width"]).toInt()
        val camera = Fixtures.list(stream["camera_frames"]).map { RgbImage(width, height, Fixtures.bytes(it as String)) }
        val processed = Fixtures.list(stream["processed"]).map { (it as Number).toInt() }
        val pre = Preprocessor(m.preprocessing)
        val state = StreamState(m)
        var t = 0
        for (i in processed[0] until camera.size) {
            if (!state.onCameraFrame(i.toLong())) continue
            assertEquals("camera frame processed at step $t", processed[t], i)
            val fed = tensors(steps[t], "inputs")
            assertEquals(m.states.size + 1, fed.size)
            assertArrayEquals("step $t: the frame", fed.getValue(m.frameInput.name), pre.apply(camera[i]), 1e-6f)
            for ((name, value) in state.inputs) assertArrayEquals("step $t: $name", fed.getValue(name), value, 0f)
            if (t == 0) assertTrue(state.inputs.values.all { v -> v.all { it == 0f } })
            else assertTrue("real states are not zeros", state.inputs.values.any { v -> v.any { it != 0f } })
            state.feedBack(tensors(steps[t], "outputs"))
            t++
        }
        assertEquals(steps.size, t)
        assertEquals(1, state.resets)
    }

    @Test
    fun realLogitsSmoothedAsEdgekitDoes() {
        val logits = steps.map { tensors(it, "outputs").getValue(m.logitsOutput.name) }
        val want = Fixtures.list(Fixtures.obj(Fixtures.index["stream"])["smoothed"]).map { (it as Number).toInt() }
        assertEquals(want, Smoother.smooth(logits).toList())
    }

    @Test
    fun processesTheFramesEdgekitsStreamProcesses() {
        for (case in Fixtures.list(Fixtures.index["stream_indices"]).map { Fixtures.obj(it) }) {
            val length = Fixtures.num(case["length"]).toInt()
            val stride = Fixtures.num(case["stride"]).toInt()
            val want = Fixtures.list(case["indices"]).map { (it as Number).toInt() }
            val state = StreamState(withReset(stride, 2 * stride))
            val got = (want[0] until length).filter { state.onCameraFrame(it.toLong()) }
            assertEquals("length $length stride $stride", want, got)
            assertEquals(1, state.resets)
        }
    }

    @Test
    fun resetsAfterAGapAndAtANewStream() {
        val every = m.reset.processEvery
        val idle = m.reset.idleFrames
        val state = StreamState(m)
        assertTrue(state.onCameraFrame(100))
        assertEquals(1, state.resets)
        state.feedBack(steps[0].let { tensors(it, "outputs") })
        assertFalse(every > 1 && state.onCameraFrame(100L + every - 1))
        assertTrue(state.onCameraFrame(100L + every))
        assertEquals(1, state.resets)
        assertTrue(state.inputs.values.any { v -> v.any { it != 0f } })
        // a gap of idle_frames since the last processed frame: back to zeros
        assertTrue(state.onCameraFrame(100L + every + idle))
        assertEquals(2, state.resets)
        assertTrue(state.inputs.values.all { v -> v.all { it == 0f } })
        // a gap just under idle_frames keeps the state
        state.feedBack(tensors(steps[1], "outputs"))
        assertTrue(state.onCameraFrame(100L + every + idle + idle - 1))
        assertEquals(if (idle - 1 >= every) 2 else 3, state.resets)
        // a new camera session (time restarts)
        assertTrue(state.onCameraFrame(0))
        assertEquals(if (idle - 1 >= every) 3 else 4, state.resets)
        state.restart()
        assertTrue(state.onCameraFrame(5000))
    }

    @Test
    fun frameClockCountsDroppedFrames() {
        val clock = FrameClock(33_333_333)
        assertEquals(0L, clock.frameNumber(1_000_000_000))
        assertEquals(1L, clock.frameNumber(1_033_000_000))
        assertEquals(4L, clock.frameNumber(1_134_000_000))
    }

    @Test(expected = IllegalArgumentException::class)
    fun aMissingStateOutputIsAnError() {
        StreamState(m).feedBack(mapOf(m.logitsOutput.name to FloatArray(m.logitsOutput.size)))
    }

    private fun withReset(every: Int, idle: Int) = StreamManifest(m.model, m.file, m.target, m.precision, m.sha256,
        m.sizeBytes, m.labels, m.frameInput, m.logitsOutput, m.states, m.preprocessing,
        ResetRule(every, idle, m.reset.selfFlushFrames), m.lineage)
}

package edgekit.android

import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test

class ManifestTest {
    private val raw = Fixtures.obj(Json.parse(Fixtures.file("manifest.json").readText()))

    @Test
    fun readsTheRealStreamingManifestByName() {
        val m = Fixtures.manifest()
        assertEquals(raw["model"], m.model)
        assertEquals(raw["file"], m.file)
        assertEquals(Fixtures.list(raw["labels"]), m.labels)
        assertEquals(Fixtures.obj(raw["frame_input"])["name"], m.frameInput.name)
        assertEquals(Fixtures.list(Fixtures.obj(raw["frame_input"])["shape"]).map { (it as Number).toInt() }, m.frameInput.shape.toList())
        assertEquals(Fixtures.obj(raw["logits_output"])["name"], m.logitsOutput.name)
        assertEquals(m.labels.size, m.logitsOutput.size)
        val states = Fixtures.list(raw["states"]).map { Fixtures.obj(it) }
        assertEquals(states.size, m.states.size)
        for ((s, r) in m.states.zip(states)) {
            assertEquals(r["input"], s.input)
            assertEquals(r["output"], s.output)
            assertEquals(Fixtures.num(r["bytes"]).toInt(), s.size * 4)
        }
        val reset = Fixtures.obj(raw["reset"])
        assertEquals(Fixtures.num(reset["process_every"]).toInt(), m.reset.processEvery)
        assertEquals(Fixtures.num(reset["idle_frames"]).toInt(), m.reset.idleFrames)
        assertEquals(Fixtures.num(reset["self_flush_frames"]).toInt(), m.reset.selfFlushFrames)
        assertEquals(Fixtures.obj(Fixtures.obj(raw["source"])["lineage"])["sha256"], m.lineage!!["sha256"])
        assertTrue(m.preprocessing.resizeHW != null && m.preprocessing.crop == null)
        val crop = Fixtures.manifest("manifest_crop.json").preprocessing
        assertTrue(crop.resizeShorter != null && crop.crop != null)
    }

    @Test
    fun picksTheStreamingArtifactOfAFolderManifest() {
        val other = LinkedHashMap(raw).apply { remove("states"); put("streaming", false); put("file", "other.tflite") }
        val folder = linkedMapOf("format" to "edgekit.export", "version" to 1, "artifacts" to listOf(other, raw))
        assertEquals(raw["file"], StreamManifest.parse(Json.write(folder)).file)
        expectError("no artifact named nope.tflite") { StreamManifest.parse(Json.write(folder), "nope.tflite") }
        val two = linkedMapOf("format" to "edgekit.export", "artifacts" to listOf(raw, LinkedHashMap(raw).apply { put("file", "b.tflite") }))
        expectError("2 streaming TFLite models") { StreamManifest.parse(Json.write(two)) }
    }

    @Test
    fun refusesWhatItCannotRunWithOneLine() {
        expectError("not a streaming model") {
            StreamManifest.fromRecord(LinkedHashMap(raw).apply { remove("states"); put("streaming", false) })
        }
        expectError("not an edgekit export manifest") { StreamManifest.parse("{\"format\": \"x\"}") }
        expectError("not a readable manifest") { StreamManifest.parse("{") }
        expectError("labels for") { StreamManifest.fromRecord(LinkedHashMap(raw).apply { put("labels", listOf("a")) }) }
        val gray = LinkedHashMap(Fixtures.obj(raw["preprocessing"])).apply { put("color", "L") }
        expectError("feeds RGB camera frames") { StreamManifest.fromRecord(LinkedHashMap(raw).apply { put("preprocessing", gray) }) }
    }

    private fun expectError(part: String, block: () -> Unit) {
        try {
            block()
            fail("expected a ManifestError with '$part'")
        } catch (e: ManifestError) {
            assertTrue("'${e.message}' should say '$part'", e.message!!.contains(part))
            assertTrue("one line", !e.message.orEmpty().contains("\n"))
        }
    }
}

package edgekit.android

import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Test
import java.io.File

/** Writes the phone's benchmark file; tests/test_android_demo.py hands it to `edgekit report`. */
class BenchWriterTest {
    @Test
    fun writesRowsEdgekitReads() {
        val m = Fixtures.manifest()
        val lat = Fixtures.list(Fixtures.obj(Fixtures.list(Fixtures.index["latency"])[3])["latencies_ms"])
            .map { (it as Number).toDouble() }.toDoubleArray()
        val phone = DeviceInfo("Pixel 8", "Google", "Tensor G3", "14", "arm64-v8a", 9)
        val rows = listOf(
            BenchWriter.row(m, phone, lat, "xnnpack", 4, 12.5, 3.25, 10, "/sdcard/Android/data/x/files/${m.file}",
                mapOf("litert" to "1.4.0")),
            BenchWriter.row(m, phone, DoubleArray(0), "gpu", 1, null, null, 0, m.file))
        val doc = BenchWriter.document(rows, phone, "edgekit android_demo: benchmark")
        val out = File(System.getProperty("edgekit.bench_out") ?: File(Fixtures.dir, "android_bench.json").path)
        BenchWriter.write(out, doc)
        val back = Fixtures.obj(Json.parse(out.readText()))
        assertEquals("edgekit.bench", back["format"])
        val row = Fixtures.obj(Fixtures.list(back["rows"])[0])
        assertEquals("litert", row["runtime"])
        assertEquals("frame", row["per"])
        assertEquals("Pixel 8", row["device"])
        assertEquals(lat.size.toLong(), row["timed_runs"])
        assertEquals(LatencyStats.percentile(lat, 50.0), Fixtures.num(row["p50_ms"]), 0.0)
        assertTrue(Fixtures.obj(row["lineage"])["sha256"] is String)
        assertEquals("no timed frames", Fixtures.obj(Fixtures.list(back["rows"])[1])["error"])
    }
}

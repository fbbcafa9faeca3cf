package edgekit.android

import java.io.File
import java.text.SimpleDateFormat
import java.util.Date
import java.util.Locale

/** The phone, as the app reads it (android.os.Build, Runtime). */
class DeviceInfo(val model: String, val manufacturer: String, val soc: String?, val androidRelease: String,
                 val abi: String, val cores: Int)

/**
 * A results file that `edgekit report` reads beside native rows (edgekit.benchmark.schema):
 * `{"format": "edgekit.bench", "version": 1, "created", "command", "machine", "rows": [...]}`,
 * one row per measured (model, delegate, threads). A row is what `edgekit bench` writes for a
 * streaming artifact: runtime `litert`, per-frame latencies with the states fed back
 * (`per: "frame"`, `streaming`, `state_feedback`), every timed call in `latencies_ms`, the
 * statistics of [LatencyStats.summarize], the device from the phone, and the lineage of the
 * source checkpoint from the manifest (reports take speed-ups by it).
 */
object BenchWriter {
    const val FORMAT = "edgekit.bench"
    const val VERSION = 1
    const val PRODUCER = "edgekit android_demo"
    /** what one timed latency covers (the same call edgekit's streaming bench times) */
    const val TIMING = "one interpreter call: the frame and the previous call's states fed, run, logits and new states fetched"

    fun machine(d: DeviceInfo): Map<String, Any?> = linkedMapOf(
        "cpu" to (d.soc ?: d.model), "device" to "${d.manufacturer} ${d.model}".trim(), "os" to "Android ${d.androidRelease}",
        "arch" to d.abi, "logical_cores" to d.cores, "usable_cores" to d.cores, "hostname" to d.model)

    /**
     * One row. [latenciesMs]: every timed frame in order (warm-up frames left out);
     * [initMs]: interpreter creation; [firstRunMs]: the first call alone.
     */
    fun row(m: StreamManifest, device: DeviceInfo, latenciesMs: DoubleArray, delegate: String, threads: Int,
            initMs: Double?, firstRunMs: Double?, warmupRuns: Int, artifactPath: String,
            versions: Map<String, String> = emptyMap(), extra: Map<String, Any?> = emptyMap()): Map<String, Any?> {
        val base = linkedMapOf<String, Any?>(
            "model" to m.model, "lineage" to m.lineage, "artifact" to artifactPath, "format" to m.target,
            "runtime" to "litert", "delegate" to delegate, "device" to device.model, "threads" to threads,
            "per" to "frame", "streaming" to true, "state_feedback" to true, "batch" to 1, "precision" to m.precision,
            "model_size_mb" to m.sizeBytes?.let { it / (1024.0 * 1024.0) }, "manifest" to m.file + ".json",
            "machine" to machine(device), "load_avg_1m" to null,
            "versions" to linkedMapOf<String, Any?>("producer" to PRODUCER).apply { putAll(versions) },
            "init_ms" to initMs, "first_run_ms" to firstRunMs, "warmup_runs" to warmupRuns,
            "latencies_ms" to latenciesMs.toList(),
            "peak_rss_mb" to null, "baseline_rss_mb" to null, "process_threads" to null, "threads_effective" to null,
            "input_shape" to m.frameInput.shape.toList(), "input_dtype" to m.frameInput.dtype, "layout" to "NCHW",
            "states" to m.states.size, "state_bytes" to m.states.fold(0) { acc, s -> acc + s.size * bytesOf(s.dtype) },
            "process_every" to m.reset.processEvery, "accuracy" to null, "timing" to TIMING, "error" to null)
        if (latenciesMs.isEmpty()) {
            base["error"] = "no timed frames"
        } else {
            base.putAll(LatencyStats.summarize(latenciesMs))
        }
        base.putAll(extra)
        return base
    }

    fun document(rows: List<Map<String, Any?>>, device: DeviceInfo, command: String, created: Date = Date()): Map<String, Any?> =
        linkedMapOf("format" to FORMAT, "version" to VERSION,
            "created" to SimpleDateFormat("yyyy-MM-dd'T'HH:mm:ssZ", Locale.US).format(created),
            "command" to command, "edgekit" to null, "producer" to PRODUCER, "machine" to machine(device), "rows" to rows)

    /** Written whole to a temporary file, then renamed: a reader never sees half a file. */
    fun write(file: File, doc: Map<String, Any?>) {
        val tmp = File(file.path + ".tmp")
        tmp.writeText(Json.write(doc) + "\n")
        if (!tmp.renameTo(file)) {
            file.delete()
            if (!tmp.renameTo(file)) throw java.io.IOException("cannot write $file")
        }
    }

    private fun bytesOf(dtype: String): Int = when (dtype) {
        "float32", "int32" -> 4
        "float16", "int16" -> 2
        "int8", "uint8" -> 1
        else -> 4
    }
}

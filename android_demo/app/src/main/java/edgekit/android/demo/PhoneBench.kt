package edgekit.android.demo

import android.content.Context
import android.os.Build
import edgekit.android.BenchWriter
import edgekit.android.DeviceInfo
import edgekit.android.StreamState
import org.tensorflow.lite.TensorFlowLite
import java.io.File

/**
 * The phone's benchmark, as `edgekit bench` times a streaming artifact: the first call alone,
 * [warmup] untimed calls, then [runs] timed calls, each one frame with the previous call's new
 * states fed back (zeros before the first), inputs fed and outputs fetched. Writes a results file
 * that `edgekit report` reads beside native rows (BenchWriter: runtime litert, per frame).
 */
object PhoneBench {
    fun device(): DeviceInfo = DeviceInfo(
        model = Build.MODEL, manufacturer = Build.MANUFACTURER,
        soc = if (Build.VERSION.SDK_INT >= Build.VERSION_CODES.S) Build.SOC_MODEL.takeIf { it != Build.UNKNOWN } else Build.HARDWARE,
        androidRelease = Build.VERSION.RELEASE, abi = Build.SUPPORTED_ABIS.firstOrNull() ?: "unknown",
        cores = Runtime.getRuntime().availableProcessors())

    fun outputFile(context: Context): File =
        File(context.getExternalFilesDir(null), "bench/android_bench.json").apply { parentFile?.mkdirs() }

    /** Runs the benchmark on [stream] with [frame] (a preprocessed camera frame); returns the row. */
    fun measure(stream: LiteRtStream, frame: FloatArray, modelPath: String, warmup: Int, runs: Int): Map<String, Any?> {
        val state = StreamState(stream.manifest)
        state.reset()
        var t = System.nanoTime()
        stream.run(frame, state)
        val first = (System.nanoTime() - t) / 1e6
        repeat(warmup) { stream.run(frame, state) }
        val lat = DoubleArray(runs)
        for (k in 0 until runs) {
            t = System.nanoTime()
            stream.run(frame, state)
            lat[k] = (System.nanoTime() - t) / 1e6
        }
        return BenchWriter.row(stream.manifest, device(), lat, stream.delegate, stream.threads, stream.initMs, first,
            warmup, modelPath, mapOf("litert" to TensorFlowLite.runtimeVersion(), "app" to BuildConfig.VERSION_NAME))
    }

    /** Adds [row] to the phone's results file (rows of earlier runs kept) and returns the file. */
    fun append(context: Context, row: Map<String, Any?>): File {
        val file = outputFile(context)
        val rows = mutableListOf<Map<String, Any?>>()
        if (file.isFile) {
            @Suppress("UNCHECKED_CAST")
            val old = runCatching { edgekit.android.Json.parse(file.readText()) as Map<String, Any?> }.getOrNull()
            @Suppress("UNCHECKED_CAST")
            (old?.get("rows") as? List<Map<String, Any?>>)?.let { rows.addAll(it) }
        }
        rows.add(row)
        BenchWriter.write(file, BenchWriter.document(rows, device(), "edgekit android_demo benchmark (${BuildConfig.APPLICATION_ID})"))
        return file
    }
}

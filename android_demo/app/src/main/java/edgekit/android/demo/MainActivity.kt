package edgekit.android.demo

import android.Manifest
import android.content.pm.PackageManager
import android.os.Bundle
import android.util.Log
import android.util.Size
import android.widget.Button
import android.widget.ProgressBar
import android.widget.TextView
import androidx.activity.ComponentActivity
import androidx.activity.result.contract.ActivityResultContracts
import androidx.camera.core.CameraSelector
import androidx.camera.core.ImageAnalysis
import androidx.camera.core.ImageProxy
import androidx.camera.core.Preview
import androidx.camera.core.resolutionselector.ResolutionSelector
import androidx.camera.core.resolutionselector.ResolutionStrategy
import androidx.camera.lifecycle.ProcessCameraProvider
import androidx.camera.view.PreviewView
import androidx.core.content.ContextCompat
import edgekit.android.FrameClock
import edgekit.android.LatencyWindow
import edgekit.android.Preprocessor
import edgekit.android.RgbImage
import edgekit.android.Smoother
import edgekit.android.StreamState
import java.util.concurrent.ExecutorService
import java.util.concurrent.Executors

/**
 * The live demo: the rear camera's frames (CameraX ImageAnalysis, RGBA, latest frame only) go
 * through the manifest's preprocessing into the streaming model, one in `process_every`, with
 * the states fed back by name and reset by the manifest's rule; the screen shows the smoothed
 * gesture, its confidence, and the per-frame p50 / p90 latency of the model call.
 *
 * Everything touching the interpreter runs on one thread ([worker]); the Benchmark button (or
 * `adb shell am start ... --ez bench true`) times the model on the latest frame and writes the
 * results file for `edgekit report`.
 *
 * Intent extras: `model` (the .tflite file name, when the folder holds several), `delegate`
 * (xnnpack | none | gpu), `threads`, `bench` (run the benchmark once the model is loaded),
 * `warmup`, `runs`, `frame_period_ms` (the camera's frame period, 33).
 */
class MainActivity : ComponentActivity() {
    private val worker: ExecutorService = Executors.newSingleThreadExecutor()
    private lateinit var gestureView: TextView
    private lateinit var confidenceView: ProgressBar
    private lateinit var latencyView: TextView
    private lateinit var statusView: TextView

    // owned by the worker thread
    private var stream: LiteRtStream? = null
    private var modelPath = ""
    private var preprocessor: Preprocessor? = null
    private var state: StreamState? = null
    private var clock = FrameClock(33_333_333)
    private val smoother = Smoother()
    private val latencies = LatencyWindow(200)
    private var lastFrame: FloatArray? = null
    private var resetsSeen = 0
    private var processed = 0L
    private var fpsStart = 0L

    private val askCamera = registerForActivityResult(ActivityResultContracts.RequestPermission()) { granted ->
        if (granted) startCamera() else statusView.text = "camera permission denied"
    }

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        setContentView(R.layout.activity_main)
        gestureView = findViewById(R.id.gesture)
        confidenceView = findViewById(R.id.confidence)
        latencyView = findViewById(R.id.latency)
        statusView = findViewById(R.id.status)
        findViewById<Button>(R.id.reset).setOnClickListener { worker.execute { restartStream() } }
        findViewById<Button>(R.id.bench).setOnClickListener { worker.execute { benchmark() } }

        val delegate = intent.getStringExtra("delegate") ?: "xnnpack"
        val threads = intent.getIntExtra("threads", 4)
        clock = FrameClock((intent.getIntExtra("frame_period_ms", 33) * 1_000_000L).coerceAtLeast(1))
        val artifact = intent.getStringExtra("model")
        worker.execute { load(artifact, delegate, threads) }
        if (intent.getBooleanExtra("bench", false)) worker.execute { benchmark() }

        if (ContextCompat.checkSelfPermission(this, Manifest.permission.CAMERA) == PackageManager.PERMISSION_GRANTED) {
            startCamera()
        } else {
            askCamera.launch(Manifest.permission.CAMERA)
        }
    }

    private fun load(artifact: String?, delegate: String, threads: Int) {
        try {
            val found = ModelFiles.find(this, artifact)
            val s = LiteRtStream(found.model, found.manifest, delegate, threads)
            stream = s
            modelPath = found.model.path
            preprocessor = Preprocessor(found.manifest.preprocessing)
            state = StreamState(found.manifest)
            val m = found.manifest
            show(status = "${m.model} ${m.precision} (${found.from}), LiteRT ${delegate}, $threads threads, " +
                "${m.states.size} states, every ${m.reset.processEvery} frame(s); init %.1f ms".format(s.initMs))
        } catch (e: Exception) {
            Log.e(TAG, "loading the model failed", e)
            show(status = "cannot load the model: ${e.message}")
        }
    }

    private fun startCamera() {
        val future = ProcessCameraProvider.getInstance(this)
        future.addListener(Runnable {
            val provider = future.get()
            val preview = Preview.Builder().build()
            preview.setSurfaceProvider(findViewById<PreviewView>(R.id.preview).surfaceProvider)
            val analysis = ImageAnalysis.Builder()
                .setResolutionSelector(ResolutionSelector.Builder().setResolutionStrategy(
                    ResolutionStrategy(Size(640, 480), ResolutionStrategy.FALLBACK_RULE_CLOSEST_HIGHER_THEN_LOWER)).build())
                .setBackpressureStrategy(ImageAnalysis.STRATEGY_KEEP_ONLY_LATEST)
                .setOutputImageFormat(ImageAnalysis.OUTPUT_IMAGE_FORMAT_RGBA_8888)
                .build()
            analysis.setAnalyzer(worker, ImageAnalysis.Analyzer { image ->
                try {
                    analyze(image)
                } finally {
                    image.close()  // CameraX delivers the next frame only after this one is closed
                }
            })
            provider.unbindAll()
            provider.bindToLifecycle(this, CameraSelector.DEFAULT_BACK_CAMERA, preview, analysis)
        }, ContextCompat.getMainExecutor(this))
    }

    /** One camera frame, on the worker thread. */
    private fun analyze(image: ImageProxy) {
        val s = stream ?: return
        val st = state ?: return
        val pre = preprocessor ?: return
        // frame numbers from timestamps: frames the camera or the analyzer dropped count for the reset rule
        if (!st.onCameraFrame(clock.frameNumber(image.imageInfo.timestamp))) return
        if (st.resets != resetsSeen) {  // a new stream or a gap: the shown label starts over too
            resetsSeen = st.resets
            smoother.reset()
        }
        val plane = image.planes[0]
        val buf = plane.buffer.apply { rewind() }
        val bytes = ByteArray(buf.remaining()).also { buf.get(it) }
        val rgb = RgbImage.fromRgba(image.width, image.height, bytes, plane.rowStride).rotated(image.imageInfo.rotationDegrees)
        val x = pre.apply(rgb)
        lastFrame = x
        val t0 = System.nanoTime()
        val logits = s.run(x, st)
        latencies.add((System.nanoTime() - t0) / 1e6)
        val label = smoother.update(logits)
        processed++
        val now = System.nanoTime()
        if (fpsStart == 0L) fpsStart = now
        val fps = if (now > fpsStart) (processed - 1) * 1e9 / (now - fpsStart) else 0.0
        val name = if (label == Smoother.NO_LABEL) getString(R.string.no_label) else s.manifest.labels[label]
        val conf = smoother.confidence(label)
        val text = "model p50 %.2f ms  p90 %.2f ms  (%d frames)  %.1f processed frames/s".format(
            latencies.p50() ?: 0.0, latencies.p90() ?: 0.0, latencies.count, fps)
        runOnUiThread {
            gestureView.text = name
            confidenceView.progress = (conf * 1000).toInt()
            latencyView.text = text
        }
    }

    private fun restartStream() {
        state?.restart()
        clock.restart()
        smoother.reset()
        show(status = "stream reset")
    }

    private fun benchmark() {
        val s = stream ?: return show(status = "no model loaded")
        val frame = lastFrame ?: FloatArray(s.manifest.frameInput.size)  // zeros before the first camera frame
        val warmup = intent.getIntExtra("warmup", 10)
        val runs = intent.getIntExtra("runs", 100)
        try {
            val row = PhoneBench.measure(s, frame, modelPath, warmup, runs)
            val file = PhoneBench.append(this, row)
            // the live stream's states were not touched (the benchmark keeps its own); restart it anyway
            restartStream()
            val msg = "benchmark: p50 %.3f ms  p90 %.3f ms per frame (%d runs) -> %s".format(
                row["p50_ms"] as Double, row["p90_ms"] as Double, runs, file.path)
            Log.i(TAG, msg)
            show(status = msg)
        } catch (e: Exception) {
            Log.e(TAG, "benchmark failed", e)
            show(status = "benchmark failed: ${e.message}")
        }
    }

    private fun show(status: String) {
        runOnUiThread { statusView.text = status }
    }

    override fun onDestroy() {
        super.onDestroy()
        worker.execute { stream?.close(); stream = null }
        worker.shutdown()
    }

    companion object {
        const val TAG = "edgekit"
    }
}

package edgekit.android

/**
 * Latency statistics exactly as edgekit defines them (edgekit.benchmark.stats.summarize):
 * percentiles interpolate linearly between order statistics (numpy's default, Hyndman & Fan
 * type 7), std is the sample standard deviation, a run is noisy when std / mean exceeds
 * [CV_THRESHOLD].
 */
object LatencyStats {
    const val CV_THRESHOLD = 0.10

    /** The q-th percentile (0..100) of [x], numpy.percentile's linear method. */
    fun percentile(x: DoubleArray, q: Double): Double {
        require(x.isNotEmpty()) { "no values" }
        require(q in 0.0..100.0) { "percentile must be in [0, 100], got $q" }
        val s = x.sortedArray()
        val pos = (s.size - 1) * (q / 100.0)
        val lo = Math.floor(pos).toInt()
        val hi = Math.min(lo + 1, s.size - 1)
        val t = pos - lo
        val a = s[lo]
        val b = s[hi]
        // numpy's _lerp: a + (b - a) * t, from the upper end when t >= 0.5 (exact at t = 1)
        return if (t >= 0.5) b - (b - a) * (1 - t) else a + (b - a) * t
    }

    /** The schema's statistics fields of per-run latencies (milliseconds). */
    fun summarize(latenciesMs: DoubleArray, batch: Int = 1, cvThreshold: Double = CV_THRESHOLD): Map<String, Any?> {
        require(latenciesMs.isNotEmpty()) { "no timed runs to summarize" }
        val n = latenciesMs.size
        val mean = latenciesMs.sum() / n
        val std = if (n > 1) Math.sqrt(latenciesMs.fold(0.0) { acc, v -> acc + (v - mean) * (v - mean) } / (n - 1)) else 0.0
        val cv = if (mean > 0) std / mean else Double.POSITIVE_INFINITY
        return linkedMapOf(
            "timed_runs" to n, "min_ms" to latenciesMs.fold(Double.POSITIVE_INFINITY) { a, b -> Math.min(a, b) }, "mean_ms" to mean, "std_ms" to std,
            "p50_ms" to percentile(latenciesMs, 50.0), "p90_ms" to percentile(latenciesMs, 90.0),
            "p99_ms" to percentile(latenciesMs, 99.0), "max_ms" to latenciesMs.fold(Double.NEGATIVE_INFINITY) { a, b -> Math.max(a, b) },
            "cv" to cv, "noisy" to (cv > cvThreshold), "cv_threshold" to cvThreshold,
            "throughput_ips" to if (mean > 0) batch * 1000.0 / mean else 0.0)
    }
}

/** The last [capacity] latencies of a live loop, for the on-screen p50 / p90. */
class LatencyWindow(val capacity: Int = 200) {
    private val buf = DoubleArray(capacity)
    private var n = 0
    private var next = 0

    init {
        require(capacity >= 1) { "capacity must be a positive integer" }
    }

    fun add(ms: Double) {
        buf[next] = ms; next = (next + 1) % capacity; if (n < capacity) n++
    }

    val count: Int get() = n

    fun values(): DoubleArray = DoubleArray(n) { buf[(next - n + it + capacity) % capacity] }

    fun p50(): Double? = if (n == 0) null else LatencyStats.percentile(values(), 50.0)
    fun p90(): Double? = if (n == 0) null else LatencyStats.percentile(values(), 90.0)
}

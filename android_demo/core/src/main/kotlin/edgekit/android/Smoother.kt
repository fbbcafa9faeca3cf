package edgekit.android

/**
 * edgekit's smoother (edgekit.evaluation.smoothing), one frame at a time: the logits of the last [window]
 * processed frames (this one included, fewer at the start) are summed and their argmax is this
 * frame's candidate; the label shown switches to a candidate once [agree] consecutive
 * candidates name it, and is [NO_LABEL] until the first acceptance. The steady on-screen label
 * of the TSM online demo (Lin, Gan & Han, ICCV 2019).
 */
class Smoother(val window: Int = DEFAULT_WINDOW, val agree: Int = DEFAULT_AGREE) {
    private val recent = java.util.ArrayDeque<FloatArray>()
    private var lastCandidate = NO_LABEL
    private var run = 0
    private var current = NO_LABEL

    /** the window's summed logits after the last [update] */
    var windowSum: DoubleArray = DoubleArray(0)
        private set

    init {
        require(window >= 1) { "window must be a positive integer, got $window" }
        require(agree >= 1) { "agree must be a positive integer, got $agree" }
    }

    /** This processed frame's logits -> the label shown (an index, or [NO_LABEL]). */
    fun update(logits: FloatArray): Int {
        recent.addLast(logits.copyOf())
        if (recent.size > window) recent.removeFirst()
        val sum = DoubleArray(logits.size)
        for (l in recent) {
            require(l.size == sum.size) { "logits changed size: ${l.size} after ${sum.size}" }
            for (c in l.indices) sum[c] += l[c].toDouble()
        }
        windowSum = sum
        val candidate = argmax(sum)
        run = if (candidate == lastCandidate) run + 1 else 1
        lastCandidate = candidate
        if (run >= agree) current = candidate
        return current
    }

    /** The probability of [label] under the softmax of the window's mean logits (the confidence bar). */
    fun confidence(label: Int): Double {
        if (label < 0 || windowSum.isEmpty()) return 0.0
        val n = recent.size.toDouble()
        val m = windowSum.fold(Double.NEGATIVE_INFINITY) { a, b -> Math.max(a, b) } / n
        var z = 0.0
        for (v in windowSum) z += Math.exp(v / n - m)
        return Math.exp(windowSum[label] / n - m) / z
    }

    fun reset() {
        recent.clear(); lastCandidate = NO_LABEL; run = 0; current = NO_LABEL; windowSum = DoubleArray(0)
    }

    companion object {
        const val NO_LABEL = -1
        const val DEFAULT_WINDOW = 12
        const val DEFAULT_AGREE = 2

        /** first index of the largest value (torch.argmax's tie rule) */
        fun argmax(x: DoubleArray): Int {
            var best = 0
            for (k in 1 until x.size) if (x[k] > x[best]) best = k
            return best
        }

        /** Labels shown for a whole sequence of per-frame logits (edgekit.evaluation.smoothing.smooth for one stream). */
        fun smooth(logits: List<FloatArray>, window: Int = DEFAULT_WINDOW, agree: Int = DEFAULT_AGREE): IntArray {
            val s = Smoother(window, agree)
            return IntArray(logits.size) { s.update(logits[it]) }
        }
    }
}

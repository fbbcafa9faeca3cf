package edgekit.android

/**
 * The states of a streaming model between calls, kept by the tensor NAMES the manifest gives
 * (the runtime's signature lists them in string order, args_1, args_10, args_2, ..., so a
 * position says nothing), in float (an int8 tensor is quantized at the runtime boundary with
 * its own scale: [Quant]).
 *
 * The manifest's reset rule decides which camera frames run and when the states go back to
 * zeros: [onCameraFrame] takes the running camera frame number (from the frame timestamps, so
 * frames the camera dropped count) and says whether to process it; the states reset at the
 * first processed frame of a stream and when [ResetRule.idleFrames] or more camera frames
 * passed since the last processed one (a pause, dropped frames): the state must come from the
 * processed frame just before.
 */
class StreamState(val manifest: StreamManifest) {
    private val specs = manifest.states
    private val byInput = LinkedHashMap<String, FloatArray>()
    private var lastProcessed: Long? = null

    /** resets so far (the start of the stream included) */
    var resets = 0
        private set

    init {
        val inputs = specs.map { it.input }
        val outputs = specs.map { it.output }
        require(inputs.toSet().size == inputs.size && outputs.toSet().size == outputs.size) {
            "the manifest names a state tensor twice"
        }
        require(manifest.frameInput.name !in inputs && manifest.logitsOutput.name !in outputs) {
            "the manifest names the frame or the logits as a state"
        }
        for (s in specs) byInput[s.input] = FloatArray(s.size)
    }

    /** state input name -> its current value (what to feed next call), in the manifest's order */
    val inputs: Map<String, FloatArray> get() = byInput

    /** Zeros in every state (the manifest's init). */
    fun reset() {
        for (v in byInput.values) java.util.Arrays.fill(v, 0f)
        resets++
    }

    /** A new stream: the next camera frame is processed from zeros. */
    fun restart() {
        lastProcessed = null
    }

    /**
     * Camera frame [frameNumber] arrived: true when it is to be processed (one in
     * `process_every`), resetting the states first if the reset rule says so.
     */
    fun onCameraFrame(frameNumber: Long): Boolean {
        val last = lastProcessed
        if (last != null && frameNumber <= last) {
            // time went backwards: a new camera session
            lastProcessed = null
            return onCameraFrame(frameNumber)
        }
        if (last != null && frameNumber - last < manifest.reset.processEvery) return false
        if (last == null || frameNumber - last >= manifest.reset.idleFrames) reset()
        lastProcessed = frameNumber
        return true
    }

    /** After a call: every state output becomes the matching state input of the next call, by name. */
    fun feedBack(outputs: Map<String, FloatArray>) {
        for (s in specs) {
            val v = outputs[s.output] ?: throw IllegalArgumentException("the model returned no ${s.output} (state of ${s.input})")
            val dst = byInput.getValue(s.input)
            require(v.size == dst.size) { "${s.output} holds ${v.size} values, ${s.input} takes ${dst.size}" }
            System.arraycopy(v, 0, dst, 0, v.size)
        }
    }
}

/** Camera frame numbers from frame timestamps: frames the camera or the analyzer dropped still count. */
class FrameClock(private val framePeriodNs: Long) {
    private var t0: Long? = null

    init {
        require(framePeriodNs > 0) { "frame period must be positive" }
    }

    fun frameNumber(timestampNs: Long): Long {
        val start = t0 ?: timestampNs.also { t0 = it }
        return Math.round((timestampNs - start).toDouble() / framePeriodNs)
    }

    fun restart() {
        t0 = null
    }
}

package edgekit.android.demo

import edgekit.android.Quant
import edgekit.android.StreamManifest
import edgekit.android.StreamState
import org.tensorflow.lite.DataType
import org.tensorflow.lite.Interpreter
import org.tensorflow.lite.Tensor
import org.tensorflow.lite.gpu.CompatibilityList
import org.tensorflow.lite.gpu.GpuDelegate
import java.io.File
import java.io.FileInputStream
import java.nio.ByteBuffer
import java.nio.ByteOrder
import java.nio.channels.FileChannel

/**
 * The streaming model on LiteRT's Interpreter, one frame per call, every tensor found by the
 * NAME the manifest gives (Interpreter.getInputIndex / getOutputIndex take tensor names, which
 * is what edgekit writes; positions are never used: the converter's signature lists the states
 * in string order). int8 / uint8 tensors are quantized and dequantized here with the tensor's
 * own scale and zero point, so [StreamState] keeps every state in float (feeding back an int8
 * state whose input and output scales agree is then exact).
 *
 * [delegate]: "xnnpack" (the default CPU path), "none" (LiteRT's builtin CPU kernels) or "gpu".
 */
class LiteRtStream(modelFile: File, val manifest: StreamManifest, val delegate: String, val threads: Int) : AutoCloseable {
    private var gpu: GpuDelegate? = null
    val interpreter: Interpreter
    /** interpreter creation and tensor allocation, milliseconds */
    val initMs: Double

    private class Slot(val index: Int, val tensor: Tensor, val buffer: ByteBuffer, val quant: Quant?)

    private val frame: Slot
    private val logits: Slot
    private val stateIn: List<Pair<String, Slot>>
    private val stateOut: List<Pair<String, Slot>>
    private val inputs: Array<Any>
    private val outputs: HashMap<Int, Any>
    private val fetched: Map<String, FloatArray>

    init {
        val t0 = System.nanoTime()
        val options = Interpreter.Options().setNumThreads(threads)
        when (delegate) {
            "xnnpack" -> options.setUseXNNPACK(true)
            "none" -> options.setUseXNNPACK(false)
            "gpu" -> {
                val compat = CompatibilityList()
                val gpuOptions = if (compat.isDelegateSupportedOnThisDevice) compat.bestOptionsForThisDevice else null
                compat.close()
                requireNotNull(gpuOptions) { "this phone's GPU is not supported by the LiteRT GPU delegate" }
                gpu = GpuDelegate(gpuOptions).also { options.addDelegate(it) }
            }
            else -> throw IllegalArgumentException("unknown delegate $delegate (xnnpack, none, gpu)")
        }
        interpreter = Interpreter(mapModel(modelFile), options)
        interpreter.allocateTensors()
        initMs = (System.nanoTime() - t0) / 1e6

        val want = 1 + manifest.states.size
        require(interpreter.inputTensorCount == want && interpreter.outputTensorCount == want) {
            "${modelFile.name} has ${interpreter.inputTensorCount} inputs and ${interpreter.outputTensorCount} " +
                "outputs; its manifest describes $want of each"
        }
        frame = input(manifest.frameInput.name)
        logits = output(manifest.logitsOutput.name)
        stateIn = manifest.states.map { it.input to input(it.input) }
        stateOut = manifest.states.map { it.output to output(it.output) }
        for ((s, pair) in manifest.states.zip(stateIn)) {
            require(pair.second.tensor.shape().contentEquals(s.shape)) {
                "${s.input}: the model's shape ${pair.second.tensor.shape().toList()} is not the manifest's ${s.shape.toList()}"
            }
        }
        require(frame.tensor.shape().contentEquals(manifest.frameInput.shape)) {
            "${manifest.frameInput.name}: the model takes ${frame.tensor.shape().toList()}, the manifest says ${manifest.frameInput.shape.toList()}"
        }
        val byIndex = (listOf(frame) + stateIn.map { it.second }).sortedBy { it.index }
        inputs = Array(byIndex.size) { byIndex[it].buffer }
        outputs = HashMap<Int, Any>().apply {
            put(logits.index, logits.buffer)
            for ((_, s) in stateOut) put(s.index, s.buffer)
        }
        fetched = (listOf(manifest.logitsOutput.name to logits) + stateOut).associate { (name, slot) ->
            name to FloatArray(slot.tensor.numElements())
        }
    }

    /**
     * One frame (NCHW floats from [edgekit.android.Preprocessor]) with the states of [state] fed
     * by name; the new states go back into [state]. Returns the logits (a fresh copy).
     */
    fun run(frameTensor: FloatArray, state: StreamState): FloatArray {
        write(frame, frameTensor)
        for ((name, slot) in stateIn) write(slot, state.inputs.getValue(name))
        for (o in outputs.values) (o as ByteBuffer).rewind()
        interpreter.runForMultipleInputsOutputs(inputs, outputs)
        read(logits, fetched.getValue(manifest.logitsOutput.name))
        for ((name, slot) in stateOut) read(slot, fetched.getValue(name))
        state.feedBack(fetched)
        return fetched.getValue(manifest.logitsOutput.name).copyOf()
    }

    override fun close() {
        interpreter.close()
        gpu?.close()
    }

    private fun slot(index: Int, tensor: Tensor): Slot {
        val q = tensor.quantizationParams()
        val quant = if (tensor.dataType() == DataType.FLOAT32) null else Quant(q.scale.toDouble(), q.zeroPoint.toLong())
        require(tensor.dataType() in setOf(DataType.FLOAT32, DataType.INT8, DataType.UINT8)) {
            "tensor ${tensor.name()} is ${tensor.dataType()}: the demo feeds float32, int8 or uint8"
        }
        return Slot(index, tensor, ByteBuffer.allocateDirect(tensor.numBytes()).order(ByteOrder.nativeOrder()), quant)
    }

    private fun input(name: String): Slot {
        val i = interpreter.getInputIndex(name)  // throws, naming every input, if the manifest's name is not there
        return slot(i, interpreter.getInputTensor(i))
    }

    private fun output(name: String): Slot {
        val i = interpreter.getOutputIndex(name)
        return slot(i, interpreter.getOutputTensor(i))
    }

    private fun write(slot: Slot, values: FloatArray) {
        val b = slot.buffer
        b.rewind()
        val q = slot.quant
        when {
            q == null -> b.asFloatBuffer().put(values)
            slot.tensor.dataType() == DataType.INT8 -> for (v in values) b.put(q.quantize(v, -128, 127).toByte())
            else -> for (v in values) b.put(q.quantize(v, 0, 255).toByte())
        }
        b.rewind()
    }

    private fun read(slot: Slot, into: FloatArray) {
        val b = slot.buffer
        b.rewind()
        val q = slot.quant
        when {
            q == null -> b.asFloatBuffer().get(into)
            slot.tensor.dataType() == DataType.INT8 -> for (k in into.indices) into[k] = q.dequantize(b.get().toInt())
            else -> for (k in into.indices) into[k] = q.dequantize(b.get().toInt() and 0xff)
        }
        b.rewind()
    }

    companion object {
        fun mapModel(file: File): ByteBuffer = FileInputStream(file).use { s ->
            s.channel.map(FileChannel.MapMode.READ_ONLY, 0, s.channel.size())
        }
    }
}

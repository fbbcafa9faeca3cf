package edgekit.android

import java.io.File

/** Why a manifest cannot drive the demo, in one line. */
class ManifestError(message: String) : IllegalArgumentException(message)

/** Scale and zero point of an int8/uint8 tensor: real = (q - zeroPoint) * scale. */
class Quant(val scale: Double, val zeroPoint: Long) {
    /** float -> integer code, as edgekit's runners do (numpy in float32: x / scale, round half to even,
     *  plus the zero point, clipped to the type's range). */
    fun quantize(x: Float, min: Int, max: Int): Int {
        val q = Math.rint((x / scale.toFloat()).toDouble()) + zeroPoint
        return Math.max(min.toDouble(), Math.min(max.toDouble(), q)).toInt()
    }

    fun dequantize(q: Int): Float = ((q - zeroPoint).toFloat() * scale.toFloat())
}

/** One tensor of the streaming model, named as the runtime names it. */
class TensorSpec(val name: String, val shape: IntArray, val dtype: String, val quant: Quant?) {
    val size: Int get() = shape.fold(1) { a, b -> a * b }
}

/** One state: fed to input [input], its new value read from output [output] (names, never positions). */
class StateSpec(val input: String, val output: String, val shape: IntArray, val dtype: String,
                val inputQuant: Quant?, val outputQuant: Quant?) {
    val size: Int get() = shape.fold(1) { a, b -> a * b }
}

/**
 * What one camera frame goes through before the model (edgekit's eval transform of one frame):
 * resize to [resizeHW] (height, width) directly, or the shorter side to [resizeShorter] keeping
 * the aspect, then a centre crop to [crop] (height, width) if given, then pixel / 255 and
 * (x - mean) / std per channel, laid out [layout] (NCHW).
 */
class Preprocessing(val color: String, val resizeShorter: Int?, val resizeHW: IntArray?, val crop: IntArray?,
                    val mean: FloatArray, val std: FloatArray, val layout: String)

/**
 * The reset rule of the manifest: process one camera frame in [processEvery]; zeros at the
 * start of every stream and again after [idleFrames] or more camera frames since the last
 * processed one; a stale state is forgotten by itself after [selfFlushFrames] processed frames.
 */
class ResetRule(val processEvery: Int, val idleFrames: Int, val selfFlushFrames: Int)

/**
 * A streaming export of edgekit (`edgekit export CKPT --target tflite --streaming -o DIR`): the
 * per-artifact manifest (`MODEL.stream.PREC.tflite.json`) or the folder's `manifest.json`.
 */
class StreamManifest(
    val model: String, val file: String, val target: String, val precision: String, val sha256: String?,
    val sizeBytes: Long?, val labels: List<String>, val frameInput: TensorSpec, val logitsOutput: TensorSpec,
    val states: List<StateSpec>, val preprocessing: Preprocessing, val reset: ResetRule,
    /** the source checkpoint's lineage record, copied into benchmark rows (reports take speed-ups by it) */
    val lineage: Map<String, Any?>?
) {
    /** frame height and width the model takes (NCHW) */
    val frameHeight: Int get() = frameInput.shape[2]
    val frameWidth: Int get() = frameInput.shape[3]

    companion object {
        fun load(file: File, artifact: String? = null): StreamManifest {
            if (!file.isFile) throw ManifestError("manifest not found: $file")
            return parse(file.readText(), artifact)
        }

        /**
         * Reads a per-artifact manifest, or the folder manifest's streaming TFLite artifact
         * ([artifact]: its file name, needed only when the folder holds several).
         */
        fun parse(text: String, artifact: String? = null): StreamManifest {
            val doc = try {
                J.obj(Json.parse(text), "manifest")
            } catch (e: Json.JsonError) {
                throw ManifestError("not a readable manifest: ${e.message}")
            }
            if (doc["format"] != "edgekit.export") throw ManifestError("not an edgekit export manifest (no 'edgekit.export' format)")
            val rec = if (doc["artifacts"] != null) pick(J.list(doc["artifacts"], "artifacts"), artifact) else doc
            return fromRecord(rec)
        }

        private fun pick(records: List<Any?>, artifact: String?): Map<String, Any?> {
            val all = records.mapIndexed { k, r -> J.obj(r, "artifacts[$k]") }
            val streams = all.filter { it["streaming"] == true && it["target"] == "tflite" }
            val chosen = if (artifact != null) all.filter { it["file"] == artifact } else streams
            return when {
                chosen.size == 1 -> chosen[0]
                artifact != null -> throw ManifestError("the manifest lists no artifact named $artifact")
                streams.isEmpty() -> throw ManifestError("the manifest lists no streaming TFLite model: export one with " +
                    "`edgekit export CKPT --target tflite --streaming -o DIR`")
                else -> throw ManifestError("the manifest lists ${streams.size} streaming TFLite models (" +
                    streams.joinToString(", ") { it["file"].toString() } + "): name one")
            }
        }

        private fun quant(v: Any?, what: String): Quant? {
            if (v == null) return null
            val q = J.obj(v, what)
            return Quant(J.num(q["scale"], "$what.scale"), J.num(q["zero_point"], "$what.zero_point").toLong())
        }

        private fun tensor(v: Any?, what: String): TensorSpec {
            val t = J.obj(v, what)
            return TensorSpec(J.str(t["name"], "$what.name"), J.ints(t["shape"], "$what.shape"),
                J.str(t["dtype"], "$what.dtype"), quant(t["quantization"], "$what.quantization"))
        }

        fun fromRecord(rec: Map<String, Any?>): StreamManifest {
            val file = (rec["file"] as? String) ?: "?"
            if (rec["streaming"] != true || rec["states"] == null) {
                throw ManifestError("$file is not a streaming model (its manifest has no 'states'): export it with --streaming")
            }
            val target = J.str(rec["target"], "target")
            val states = J.list(rec["states"], "states").mapIndexed { k, v ->
                val s = J.obj(v, "states[$k]")
                val init = s["init"] ?: "zeros"
                if (init != "zeros") throw ManifestError("states[$k]: unknown init $init (this app knows zeros)")
                val q = s["quantization"]?.let { J.obj(it, "states[$k].quantization") }
                StateSpec(J.str(s["input"], "states[$k].input"), J.str(s["output"], "states[$k].output"),
                    J.ints(s["shape"], "states[$k].shape"), J.str(s["dtype"], "states[$k].dtype"),
                    quant(q?.get("input"), "states[$k].quantization.input"),
                    quant(q?.get("output"), "states[$k].quantization.output"))
            }
            val frame = tensor(rec["frame_input"], "frame_input")
            if (frame.shape.size != 4 || frame.shape[0] != 1) {
                throw ManifestError("frame_input: expected one NCHW frame [1, C, H, W], got ${frame.shape.toList()}")
            }
            val logits = tensor(rec["logits_output"], "logits_output")
            val labels = J.list(rec["labels"], "labels").mapIndexed { k, l -> J.str(l, "labels[$k]") }
            if (labels.size != logits.size) {
                throw ManifestError("${labels.size} labels for ${logits.size} logits")
            }
            val r = J.obj(rec["reset"], "reset")
            if ((r["init"] ?: "zeros") != "zeros") throw ManifestError("reset.init: unknown init ${r["init"]}")
            val every = J.int(r["process_every"] ?: 1, "reset.process_every")
            val reset = ResetRule(every, J.int(r["idle_frames"] ?: 2 * every, "reset.idle_frames"),
                J.int(r["self_flush_frames"] ?: states.size, "reset.self_flush_frames"))
            if (reset.processEvery < 1 || reset.idleFrames < 1) throw ManifestError("reset: frame counts must be positive")
            val source = rec["source"] as? Map<*, *>
            @Suppress("UNCHECKED_CAST")
            val lineage = source?.get("lineage") as? Map<String, Any?>
            return StreamManifest(J.str(rec["model"], "model"), file, target, J.str(rec["precision"], "precision"),
                rec["sha256"] as? String, (rec["size_bytes"] as? Number)?.toLong(), labels, frame, logits, states,
                preprocessing(J.obj(rec["preprocessing"], "preprocessing"), frame), reset, lineage)
        }

        private fun preprocessing(p: Map<String, Any?>, frame: TensorSpec): Preprocessing {
            val color = (p["color"] as? String) ?: "RGB"
            if (color != "RGB") throw ManifestError("preprocessing.color: the demo feeds RGB camera frames, the model takes $color")
            val layout = (p["layout"] as? String) ?: "NCHW"
            if (layout != "NCHW") throw ManifestError("preprocessing.layout: expected NCHW, got $layout")
            val resize = p["resize"]
            val shorter = if (resize is Number) J.int(resize, "preprocessing.resize") else null
            val hw = if (resize is List<*>) J.ints(resize, "preprocessing.resize") else null
            if (shorter == null && (hw == null || hw.size != 2)) throw ManifestError("preprocessing.resize: expected a size or [H, W]")
            val crop = when (val c = p["crop"]) {
                null -> null
                is Number -> intArrayOf(J.int(c, "preprocessing.crop"), J.int(c, "preprocessing.crop"))
                else -> J.ints(c, "preprocessing.crop").also {
                    if (it.size != 2) throw ManifestError("preprocessing.crop: expected a size or [H, W]")
                }
            }
            val mean = J.floats(p["mean"], "preprocessing.mean")
            val std = J.floats(p["std"], "preprocessing.std")
            val channels = frame.shape[1]
            if (mean.size != channels || std.size != channels) {
                throw ManifestError("preprocessing: ${mean.size} means and ${std.size} stds for $channels channels")
            }
            val out = crop ?: hw
            if (out != null && (out[0] != frame.shape[2] || out[1] != frame.shape[3])) {
                throw ManifestError("preprocessing gives ${out.toList()} frames, the model takes ${frame.shape.drop(2)}")
            }
            return Preprocessing(color, shorter, hw, crop, mean, std, layout)
        }
    }
}

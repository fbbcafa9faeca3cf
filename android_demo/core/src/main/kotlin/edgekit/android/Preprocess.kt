package edgekit.android

/**
 * An 8-bit RGB image, rows top to bottom, pixels interleaved R, G, B ([rgb] holds
 * width * height * 3 bytes, read unsigned). What the app makes of a camera frame.
 */
class RgbImage(val width: Int, val height: Int, val rgb: ByteArray) {
    init {
        require(width > 0 && height > 0) { "an image needs a positive size, got ${width}x$height" }
        require(rgb.size == width * height * 3) { "expected ${width * height * 3} bytes for ${width}x$height RGB, got ${rgb.size}" }
    }

    operator fun get(y: Int, x: Int, c: Int): Int = rgb[(y * width + x) * 3 + c].toInt() and 0xff

    /** The image turned clockwise by [degrees] (0, 90, 180, 270): a camera frame made upright. */
    fun rotated(degrees: Int): RgbImage {
        val d = ((degrees % 360) + 360) % 360
        if (d == 0) return this
        require(d % 90 == 0) { "rotation must be a multiple of 90 degrees, got $degrees" }
        val (w2, h2) = if (d == 180) Pair(width, height) else Pair(height, width)
        val out = ByteArray(rgb.size)
        for (y in 0 until height) for (x in 0 until width) {
            val (x2, y2) = when (d) {
                90 -> Pair(height - 1 - y, x)
                180 -> Pair(width - 1 - x, height - 1 - y)
                else -> Pair(y, width - 1 - x)
            }
            System.arraycopy(rgb, (y * width + x) * 3, out, (y2 * w2 + x2) * 3, 3)
        }
        return RgbImage(w2, h2, out)
    }

    companion object {
        /** From Android's packed ARGB ints (Bitmap.getPixels); alpha is dropped. */
        fun fromArgb(width: Int, height: Int, argb: IntArray): RgbImage {
            require(argb.size == width * height) { "expected ${width * height} pixels, got ${argb.size}" }
            val out = ByteArray(argb.size * 3)
            for (k in argb.indices) {
                val p = argb[k]
                out[3 * k] = (p shr 16).toByte(); out[3 * k + 1] = (p shr 8).toByte(); out[3 * k + 2] = p.toByte()
            }
            return RgbImage(width, height, out)
        }

        /** From an RGBA_8888 plane (CameraX ImageAnalysis OUTPUT_IMAGE_FORMAT_RGBA_8888) with its row stride. */
        fun fromRgba(width: Int, height: Int, rgba: ByteArray, rowStride: Int = width * 4): RgbImage {
            require(rowStride >= width * 4 && rgba.size >= rowStride * (height - 1) + width * 4) { "RGBA buffer too small" }
            val out = ByteArray(width * height * 3)
            for (y in 0 until height) for (x in 0 until width) {
                val s = y * rowStride + x * 4
                val d = (y * width + x) * 3
                out[d] = rgba[s]; out[d + 1] = rgba[s + 1]; out[d + 2] = rgba[s + 2]
            }
            return RgbImage(width, height, out)
        }
    }
}

/**
 * One camera frame -> the model's frame tensor, exactly as edgekit's eval transform treats one
 * frame of a clip (torchvision: Resize with antialias on uint8, CenterCrop, ToDtype(scale),
 * Normalize):
 *
 * 1. resize to the manifest's [H, W], or its shorter side to N keeping the aspect (the longer
 *    side int(N * long / short), torchvision's rule), by an antialiased bilinear (triangle)
 *    filter whose support widens with the downscale factor, horizontal pass then vertical pass,
 *    each rounded to 8 bits: Pillow's resampling filter with the fixed-point weights of
 *    torch's uint8 antialias kernel (the one torchvision runs on uint8 frames; Pillow's own
 *    22-bit weights differ from it by one level on a few pixels);
 * 2. centre crop, the offset round((size - crop) / 2) rounded half to even (Python's round);
 * 3. x = pixel * (1/255) in float32, then (x - mean) / std per channel, laid out NCHW.
 */
class Preprocessor(val p: Preprocessing) {
    /** (height, width) after the resize step for a [h] x [w] input */
    fun resizedSize(h: Int, w: Int): IntArray {
        p.resizeHW?.let { return intArrayOf(it[0], it[1]) }
        val n = p.resizeShorter!!
        return if (w <= h) intArrayOf((n.toLong() * h / w).toInt(), n) else intArrayOf(n, (n.toLong() * w / h).toInt())
    }

    /** the uint8 image after resize and crop (before scaling), the step tests compare pixel by pixel */
    fun resizeAndCrop(img: RgbImage): RgbImage {
        val (rh, rw) = resizedSize(img.height, img.width).let { Pair(it[0], it[1]) }
        var out = resample(img, rw, rh)
        p.crop?.let { out = centerCrop(out, it[0], it[1]) }
        return out
    }

    /** The model's float32 input, NCHW [1, 3, H, W] flattened. */
    fun apply(img: RgbImage): FloatArray = normalize(resizeAndCrop(img))

    /** into a caller's buffer (the app reuses one per frame) */
    fun normalize(img: RgbImage, out: FloatArray = FloatArray(3 * img.width * img.height)): FloatArray {
        val hw = img.width * img.height
        require(out.size == 3 * hw) { "output buffer holds ${out.size} floats, the frame ${3 * hw}" }
        val inv = (1.0 / 255.0).toFloat()
        for (c in 0 until 3) {
            val m = p.mean[c]
            val s = p.std[c]
            for (k in 0 until hw) {
                val v = (img.rgb[3 * k + c].toInt() and 0xff).toFloat() * inv
                out[c * hw + k] = (v - m) / s
            }
        }
        return out
    }

    companion object {
        private const val MAX_PRECISION_BITS = 22

        /** Antialiased bilinear resize, separable (horizontal, then vertical), 8-bit between passes. */
        fun resample(img: RgbImage, outW: Int, outH: Int): RgbImage {
            require(outW > 0 && outH > 0) { "bad output size ${outW}x$outH" }
            var cur = img
            if (outW != cur.width) cur = pass(cur, outW, horizontal = true)
            if (outH != cur.height) cur = pass(cur, outH, horizontal = false)
            return cur
        }

        /**
         * bounds (first index, count) and fixed-point weights of each output sample: the float
         * weights of Pillow's precompute_coeffs (a triangle filter over the input pixels whose
         * centres fall within `support` of the output pixel's centre, normalised to sum 1), then
         * torch's uint8 kernel's int16 fixed point: the most fractional bits (at most 22) for
         * which twice the largest weight stays below 2^15.
         */
        private class Coeffs(val ksize: Int, val bounds: IntArray, val weights: IntArray, val precision: Int)

        private fun coeffs(inSize: Int, outSize: Int): Coeffs {
            val scale = inSize.toDouble() / outSize
            val filterscale = Math.max(scale, 1.0)
            val support = 1.0 * filterscale  // the triangle reaches 1 input pixel at scale 1
            val ksize = Math.ceil(support).toInt() * 2 + 1
            val bounds = IntArray(outSize * 2)
            val w = DoubleArray(outSize * ksize)
            for (xx in 0 until outSize) {
                val center = (xx + 0.5) * scale
                val ss = 1.0 / filterscale
                var xmin = (center - support + 0.5).toInt()
                if (xmin < 0) xmin = 0
                var xmax = (center + support + 0.5).toInt()
                if (xmax > inSize) xmax = inSize
                xmax -= xmin
                var ww = 0.0
                for (x in 0 until xmax) {
                    var t = (x + xmin - center + 0.5) * ss
                    if (t < 0) t = -t
                    val v = if (t < 1.0) 1.0 - t else 0.0
                    w[xx * ksize + x] = v
                    ww += v
                }
                if (ww != 0.0) for (x in 0 until xmax) w[xx * ksize + x] /= ww
                bounds[2 * xx] = xmin
                bounds[2 * xx + 1] = xmax
            }
            val maxWeight = w.fold(0.0) { a, b -> Math.max(a, b) }
            var precision = 0
            while (precision < MAX_PRECISION_BITS) {
                if ((0.5 + maxWeight * (1 shl (precision + 1))).toInt() >= (1 shl 15)) break
                precision++
            }
            val weights = IntArray(w.size) {
                val f = w[it] * (1 shl precision)
                if (f < 0) (-0.5 + f).toInt() else (0.5 + f).toInt()
            }
            return Coeffs(ksize, bounds, weights, precision)
        }

        private fun pass(img: RgbImage, outSize: Int, horizontal: Boolean): RgbImage {
            val w = if (horizontal) outSize else img.width
            val h = if (horizontal) img.height else outSize
            val c = coeffs(if (horizontal) img.width else img.height, outSize)
            val out = ByteArray(w * h * 3)
            val src = img.rgb
            val half = if (c.precision > 0) 1 shl (c.precision - 1) else 0
            for (y in 0 until h) for (x in 0 until w) {
                val o = if (horizontal) x else y
                val first = c.bounds[2 * o]
                val count = c.bounds[2 * o + 1]
                for (ch in 0 until 3) {
                    var ss = half
                    for (j in 0 until count) {
                        val idx = if (horizontal) (y * img.width + first + j) * 3 + ch else ((first + j) * img.width + x) * 3 + ch
                        ss += (src[idx].toInt() and 0xff) * c.weights[o * c.ksize + j]
                    }
                    out[(y * w + x) * 3 + ch] = Math.max(0, Math.min(255, ss shr c.precision)).toByte()
                }
            }
            return RgbImage(w, h, out)
        }

        /** torchvision's centre crop: offset int(round((size - crop) / 2)), Python's round (half to even) */
        fun centerCrop(img: RgbImage, ch: Int, cw: Int): RgbImage {
            require(ch <= img.height && cw <= img.width) {
                "crop ${cw}x$ch is larger than the resized frame ${img.width}x${img.height}"
            }
            val top = Math.rint((img.height - ch) / 2.0).toInt()
            val left = Math.rint((img.width - cw) / 2.0).toInt()
            val out = ByteArray(cw * ch * 3)
            for (y in 0 until ch) System.arraycopy(img.rgb, ((top + y) * img.width + left) * 3, out, y * cw * 3, cw * 3)
            return RgbImage(cw, ch, out)
        }
    }
}

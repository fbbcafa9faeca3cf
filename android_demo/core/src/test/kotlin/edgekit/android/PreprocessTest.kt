package edgekit.android

import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Test

/** Camera frame -> model input, against edgekit's eval transform of the same frame. */
class PreprocessTest {
    @Test
    fun matchesEdgekitsEvalTransform() {
        var checked = 0
        for (f in Fixtures.list(Fixtures.index["frames"]).map { Fixtures.obj(it) }) {
            val img = RgbImage(Fixtures.num(f["width"]).toInt(), Fixtures.num(f["height"]).toInt(), Fixtures.bytes(f["file"] as String))
            for (c in Fixtures.list(f["cases"]).map { Fixtures.obj(it) }) {
                val m = Fixtures.manifest(c["manifest"] as String)
                val pre = Preprocessor(m.preprocessing)
                val what = "${img.width}x${img.height} frame, ${c["manifest"]}"
                // pixels after resize and crop: exactly torchvision's uint8 antialias resize and its crop
                val mine = pre.resizeAndCrop(img)
                val theirs = Fixtures.bytes(c["resized"] as String)
                val hw = Fixtures.list(c["resized_hw"]).map { (it as Number).toInt() }
                assertEquals(what, hw, listOf(mine.height, mine.width))
                val diff = theirs.indices.count { mine.rgb[it] != theirs[it] }
                assertEquals("$what: pixel values that differ", 0, diff)
                // the tensor: scaled and normalised in float32 as torch does
                val x = pre.apply(img)
                val ref = Fixtures.floats(c["tensor"] as String)
                assertEquals(what, ref.size, x.size)
                for (k in ref.indices) assertEquals("$what: value $k", ref[k].toDouble(), x[k].toDouble(), 1e-6)
                checked++
            }
        }
        assertTrue(checked >= 8)
    }

    @Test
    fun shorterSideResizeFollowsTorchvision() {
        val p = Preprocessor(Fixtures.manifest("manifest_crop.json").preprocessing)
        val n = p.p.resizeShorter!!
        assertEquals(listOf(n, n * 640 / 480), p.resizedSize(480, 640).toList())
        assertEquals(listOf(n * 53 / 37, n), p.resizedSize(53, 37).toList())
    }

    @Test
    fun centreCropRoundsHalfToEven() {
        // pixel value = its index: y * width + x (red channel)
        val img = RgbImage(7, 5, ByteArray(7 * 5 * 3) { (it / 3).toByte() })
        // (5 - 4) / 2 = 0.5 rounds to 0 and (7 - 2) / 2 = 2.5 to 2 (Python's round), not 1 and 3
        assertEquals(0 * 7 + 2, Preprocessor.centerCrop(img, 4, 2)[0, 0, 0])
        // (5 - 2) / 2 = 1.5 rounds to 2, (7 - 4) / 2 = 1.5 to 2
        assertEquals(2 * 7 + 2, Preprocessor.centerCrop(img, 2, 4)[0, 0, 0])
    }

    @Test
    fun rotationAndPixelFormats() {
        val argb = intArrayOf(0xff010203.toInt(), 0xff040506.toInt(), 0xff070809.toInt(), 0xff0a0b0c.toInt(),
            0xff0d0e0f.toInt(), 0xff101112.toInt())  // 3 wide, 2 high
        val img = RgbImage.fromArgb(3, 2, argb)
        assertEquals(listOf(4, 5, 6), (0 until 3).map { img[0, 1, it] })
        val rgba = ByteArray(2 * 16) { it.toByte() }  // 3 wide, row stride 16
        val fromRgba = RgbImage.fromRgba(3, 2, rgba, 16)
        assertEquals(listOf(16 + 4, 16 + 5, 16 + 6), (0 until 3).map { fromRgba[1, 1, it] })
        val r90 = img.rotated(90)  // clockwise: the bottom-left pixel goes to the top-left
        assertEquals(2, r90.width); assertEquals(3, r90.height)
        assertEquals(img[1, 0, 0], r90[0, 0, 0])
        assertEquals(img[0, 0, 0], r90[0, 1, 0])
        val r270 = img.rotated(270)
        assertEquals(img[0, 2, 0], r270[0, 0, 0])
        val back = img.rotated(90).rotated(90).rotated(180)
        assertTrue(back.rgb.contentEquals(img.rgb))
    }
}

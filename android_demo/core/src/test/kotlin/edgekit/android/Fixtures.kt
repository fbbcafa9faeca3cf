package edgekit.android

import java.io.File
import java.nio.ByteBuffer
import java.nio.ByteOrder

/**
 * The fixtures edgekit computed (android_demo/tools/make_fixtures.py), in the folder the
 * system property `edgekit.fixtures` names.
 */
object Fixtures {
    val dir: File by lazy {
        val d = System.getProperty("edgekit.fixtures") ?: throw IllegalStateException(
            "set -Dedgekit.fixtures=DIR (written by android_demo/tools/make_fixtures.py)")
        File(d)
    }

    @Suppress("UNCHECKED_CAST")
    val index: Map<String, Any?> by lazy { Json.parse(File(dir, "fixtures.json").readText()) as Map<String, Any?> }

    fun file(name: String): File = File(dir, name)

    fun manifest(name: String = "manifest.json"): StreamManifest = StreamManifest.load(file(name))

    fun floats(name: String): FloatArray {
        val b = ByteBuffer.wrap(file(name).readBytes()).order(ByteOrder.LITTLE_ENDIAN)
        return FloatArray(b.remaining() / 4) { b.float }
    }

    fun bytes(name: String): ByteArray = file(name).readBytes()

    @Suppress("UNCHECKED_CAST")
    fun obj(v: Any?): Map<String, Any?> = v as Map<String, Any?>

    @Suppress("UNCHECKED_CAST")
    fun list(v: Any?): List<Any?> = v as List<Any?>

    fun num(v: Any?): Double = (v as Number).toDouble()
}

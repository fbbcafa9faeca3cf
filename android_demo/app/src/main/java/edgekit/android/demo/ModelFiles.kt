package edgekit.android.demo

import android.content.Context
import edgekit.android.ManifestError
import edgekit.android.StreamManifest
import java.io.File

/**
 * Where the exported model comes from: the folder `edgekit export ... --streaming -o DIR` wrote,
 * pushed with adb to the app's files folder (`/sdcard/Android/data/edgekit.android.demo/files/model/`),
 * else bundled into the APK's assets (`-PedgekitModel=DIR` at build time). The manifest is the
 * folder's `manifest.json` (its streaming TFLite model; [find]'s `artifact` names one when the
 * folder holds several, e.g. fp32 and int8) or a `MODEL.stream.PREC.tflite.json`.
 */
object ModelFiles {
    class Found(val model: File, val manifest: StreamManifest, val from: String)

    fun pushedDir(context: Context): File = File(context.getExternalFilesDir(null), "model")

    fun find(context: Context, artifact: String? = null): Found {
        val pushed = pushedDir(context)
        if (pushed.isDirectory && (pushed.list()?.isNotEmpty() == true)) return fromDir(pushed, "adb push", artifact)
        val assets = context.assets.list("model")?.toList().orEmpty()
        if (assets.isNotEmpty()) {
            val out = File(context.cacheDir, "model").apply { deleteRecursively(); mkdirs() }
            for (name in assets) {
                context.assets.open("model/$name").use { input -> File(out, name).outputStream().use { input.copyTo(it) } }
            }
            return fromDir(out, "APK assets", artifact)
        }
        throw ManifestError("no model: push an export folder to ${pushed.path} (README.md) or build with -PedgekitModel=DIR")
    }

    fun fromDir(dir: File, from: String, artifact: String? = null): Found {
        val folder = File(dir, "manifest.json")
        val own = dir.listFiles { f -> f.name.endsWith(".tflite.json") }.orEmpty()
            .filter { artifact == null || it.name == "$artifact.json" }
        val manifest = when {
            own.size == 1 -> StreamManifest.load(own[0])
            folder.isFile -> StreamManifest.load(folder, artifact)
            own.isEmpty() -> throw ManifestError("${dir.path} holds no manifest.json and no ${artifact ?: "MODEL.tflite"}.json")
            else -> throw ManifestError("${dir.path} holds ${own.size} models: name one (--es model FILE.tflite)")
        }
        val model = File(dir, manifest.file)
        if (!model.isFile) throw ManifestError("the manifest names ${manifest.file}, which is not in ${dir.path}")
        return Found(model, manifest, from)
    }
}

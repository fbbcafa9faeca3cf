// The phone app: CameraX frames -> edgekit's streaming model on LiteRT (Interpreter API), states by name.
plugins {
    id("com.android.application")
    id("org.jetbrains.kotlin.android")
}

android {
    namespace = "edgekit.android.demo"
    compileSdk = 35

    defaultConfig {
        applicationId = "edgekit.android.demo"
        minSdk = 26
        targetSdk = 35
        versionCode = 1
        versionName = "0.1.0"
    }

    buildTypes {
        release {
            isMinifyEnabled = false
        }
    }
    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
    kotlinOptions {
        jvmTarget = "17"
    }
    buildFeatures {
        buildConfig = true
    }
    androidResources {
        // a .tflite bundled as an asset is copied out uncompressed
        noCompress += "tflite"
    }
}

// Optional: bundle an export folder into the APK (`-PedgekitModel=/path/to/export`); without it
// the app reads the model pushed with adb into its files folder (README.md).
val edgekitModel: String? = providers.gradleProperty("edgekitModel").orNull
if (edgekitModel != null) {
    val bundled = layout.buildDirectory.dir("generated/edgekitModel")
    val copyModel = tasks.register<Copy>("copyEdgekitModel") {
        from(file(edgekitModel)) { include("*.tflite", "*.json") }
        into(bundled.map { it.dir("model") })
    }
    android.sourceSets["main"].assets.srcDir(bundled)
    tasks.named("preBuild") { dependsOn(copyModel) }
}

dependencies {
    implementation(project(":core"))

    val camerax = "1.4.1"
    implementation("androidx.camera:camera-core:$camerax")
    implementation("androidx.camera:camera-camera2:$camerax")
    implementation("androidx.camera:camera-lifecycle:$camerax")
    implementation("androidx.camera:camera-view:$camerax")

    // LiteRT (the TensorFlow Lite runtime, org.tensorflow.lite.* classes): the Interpreter API
    // with XNNPACK on the CPU, and the GPU delegate
    val litert = "1.4.1"
    implementation("com.google.ai.edge.litert:litert:$litert")
    implementation("com.google.ai.edge.litert:litert-gpu:$litert")
    implementation("com.google.ai.edge.litert:litert-gpu-api:$litert")

    implementation("androidx.activity:activity-ktx:1.9.3")
    implementation("androidx.core:core-ktx:1.13.1")
}

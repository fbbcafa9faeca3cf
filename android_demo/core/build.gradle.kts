// The demo's model-independent logic: plain Kotlin, no Android, tested on the JVM.
// `./gradlew :core:test -Pfixtures=DIR` runs the JUnit tests against fixtures written by
// `python android_demo/tools/make_fixtures.py MODEL.tflite.json DIR` (edgekit's own numbers).
plugins {
    id("org.jetbrains.kotlin.jvm")
}

// Java 17 bytecode from whatever JDK (17 or newer) runs Gradle: no toolchain download needed
java {
    sourceCompatibility = JavaVersion.VERSION_17
    targetCompatibility = JavaVersion.VERSION_17
}
kotlin {
    compilerOptions { jvmTarget.set(org.jetbrains.kotlin.gradle.dsl.JvmTarget.JVM_17) }
}

dependencies {
    testImplementation("junit:junit:4.13.2")
}

tasks.test {
    val fixtures = providers.gradleProperty("fixtures")
    onlyIf { fixtures.isPresent }
    systemProperty("edgekit.fixtures", fixtures.getOrElse(""))
    systemProperty("edgekit.bench_out", layout.buildDirectory.file("android_bench.json").get().asFile.path)
}

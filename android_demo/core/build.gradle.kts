// The demo's model-independent logic: plain Kotlin, no Android, tested on the JVM.
// `./gradlew :core:test -Pfixtures=DIR` runs the JUnit tests against fixtures written by
// `python android_demo/tools/make_fixtures.py MODEL.tflite.json DIR` (edgekit's own numbers).
plugins {
    id("org.jetbrains.kotlin.jvm")
}

java {
    toolchain { languageVersion.set(JavaLanguageVersion.of(17)) }
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

// edgekit android_demo: the phone app (:app) and its plain-Kotlin logic (:core, JVM-tested).
pluginManagement {
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
}
dependencyResolutionManagement {
    repositoriesMode.set(RepositoriesMode.FAIL_ON_PROJECT_REPOS)
    repositories {
        google()
        mavenCentral()
    }
}
rootProject.name = "edgekit-android-demo"
include(":core", ":app")

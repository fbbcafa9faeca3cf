"""android_demo/ (issue 10 section 4): the phone app's plain-Kotlin core, tested on the JVM against edgekit.

The Android app itself needs the Android SDK (not installable here); its model-independent
logic lives in ``android_demo/core`` (plain Kotlin, no Android imports), and its JUnit tests
check it against what edgekit computes on a real streaming export of a tiny causal TSM
(``android_demo/tools/make_fixtures.py``): the manifest's tensors and states by name, the
frames and states edgekit's runner fed the real ``.tflite`` step by step (replayed from the
clip's camera frames), camera frames through the eval transform (pixels and tensor), the
smoother, the latency statistics, the frames the reset rule processes, the int8 quantization
fields and arithmetic. The benchmark file the Kotlin writer produces must be read by
``edgekit report`` beside a native ``edgekit bench`` row of the same artifact.

kotlinc starts slowly: the core and its tests are compiled once per module (5-15 s, while
edgekit exports) and run once; the tests below read that run.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "android_demo" / "core"
JAVA_LIBS = Path("/usr/share/java")
CLASSPATH = [JAVA_LIBS / "junit4.jar", JAVA_LIBS / "hamcrest-core.jar"]
TEST_CLASSES = sorted(p.stem for p in (CORE / "src" / "test" / "kotlin" / "edgekit" / "android").glob("*Test.kt"))


def _toolchain() -> tuple[str, str]:
    kotlinc, java = shutil.which("kotlinc"), shutil.which("java")
    missing = [p for p in CLASSPATH + [JAVA_LIBS / "kotlin-stdlib.jar"] if not p.is_file()]
    if not kotlinc or not java or missing:
        # a missing package is not missing hardware: fail with the line that installs it (README's test command does)
        raise AssertionError("the JVM toolchain is not installed: apt-get install -y kotlin junit4 (.ci/run does it)")
    return kotlinc, java


@pytest.fixture(scope="module")
def jvm_run(clip_ckpt: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Export a streaming TFLite model, write the fixtures, compile the core and its tests, run JUnit."""
    from edgekit.exporters.pipeline import export

    kotlinc, java = _toolchain()
    tmp = tmp_path_factory.mktemp("android_demo")
    jar = tmp / "core-and-tests.jar"
    cp = ":".join(str(p) for p in CLASSPATH)
    # compile while edgekit exports (kotlinc needs no fixtures); the C1 JIT alone halves its time
    build = subprocess.Popen([kotlinc, "-J-XX:TieredStopAtLevel=1", "-J-XX:+UseSerialGC",
                              str(CORE / "src" / "main" / "kotlin"), str(CORE / "src" / "test" / "kotlin"),
                              "-cp", cp, "-d", str(jar)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        record = export(clip_ckpt, "tflite", output_dir=tmp / "export", streaming=True, parity_size=4)[0]
        manifest = Path(record["path"] + ".json")
        fixtures = tmp / "fixtures"
        made = subprocess.run([sys.executable, str(ROOT / "android_demo" / "tools" / "make_fixtures.py"),
                               str(manifest), str(fixtures)], capture_output=True, text=True, timeout=300)
        assert made.returncode == 0, made.stderr[-3000:]
        log, _ = build.communicate(timeout=600)
    finally:
        if build.poll() is None:
            build.kill()
    errors = [ln for ln in log.splitlines() if "error:" in ln]
    assert build.returncode == 0 and not errors, log
    bench = tmp / "android_bench.json"
    run = subprocess.run([java, f"-Dedgekit.fixtures={fixtures}", f"-Dedgekit.bench_out={bench}",
                          "-cp", ":".join([str(jar), str(JAVA_LIBS / "kotlin-stdlib.jar"), cp]),
                          "org.junit.runner.JUnitCore", *(f"edgekit.android.{c}" for c in TEST_CLASSES)],
                         capture_output=True, text=True, timeout=300)
    return {"run": run, "bench": bench, "record": record, "tmp": tmp, "fixtures": fixtures,
            "warnings": [ln for ln in log.splitlines() if "warning:" in ln
                         and "Options -Xverify:none" not in ln]}


def test_jvm_unit_tests_pass(jvm_run: dict) -> None:
    run = jvm_run["run"]
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-4000:]
    m = re.search(r"OK \((\d+) tests\)", out)
    assert len(TEST_CLASSES) >= 6 and m and int(m.group(1)) >= 21, out[-2000:]
    assert not jvm_run["warnings"], jvm_run["warnings"]


def test_fixtures_come_from_the_real_export(jvm_run: dict) -> None:
    """The replayed stream is the real artifact's: its state names are the manifest's, and the
    states are not zeros after the first step (so the feedback test can fail)."""
    import numpy as np

    index = json.loads((jvm_run["fixtures"] / "fixtures.json").read_text())
    rec = jvm_run["record"]
    steps = index["stream"]["steps"]
    assert len(steps) >= 4
    assert set(steps[0]["inputs"]) == {rec["frame_input"]["name"], *(s["input"] for s in rec["states"])}
    assert set(steps[0]["outputs"]) == {rec["logits_output"]["name"], *(s["output"] for s in rec["states"])}
    later = steps[1]["inputs"][rec["states"][0]["input"]]
    assert np.abs(np.fromfile(jvm_run["fixtures"] / later, "<f4")).max() > 0
    assert len(index["frames"]) >= 4 and all(len(f["cases"]) == 2 for f in index["frames"])


def test_core_has_no_android_dependency() -> None:
    """The core compiles with a bare kotlinc: nothing from android.*, androidx.* or LiteRT."""
    bad = [f"{p.relative_to(ROOT)}:{n}" for p in (CORE / "src").rglob("*.kt")
           for n, line in enumerate(p.read_text().splitlines(), 1)
           if re.match(r"\s*import\s+(android|androidx|org\.tensorflow|com\.google)\.", line)]
    assert not bad, bad


def test_phone_benchmark_file_goes_into_a_report_beside_native_rows(jvm_run: dict) -> None:
    from edgekit.benchmark.report import report
    from edgekit.benchmark.run import bench
    from edgekit.benchmark.schema import FIELDS, load_results

    assert jvm_run["run"].returncode == 0, (jvm_run["run"].stdout + jvm_run["run"].stderr)[-3000:]
    phone = load_results(jvm_run["bench"])
    ok, failed = phone["rows"]
    assert set(FIELDS) <= set(ok), sorted(set(FIELDS) - set(ok))
    rec = jvm_run["record"]
    assert (ok["runtime"], ok["per"], ok["streaming"], ok["state_feedback"]) == ("litert", "frame", True, True)
    assert ok["device"] == "Pixel 8" and ok["machine"]["os"] == "Android 14"
    assert ok["lineage"] == rec["source"]["lineage"] and ok["model"] == rec["model"]
    assert ok["states"] == len(rec["states"]) and ok["state_bytes"] == rec["state_bytes"]
    assert ok["timed_runs"] == len(ok["latencies_ms"]) == 50
    assert failed["error"] == "no timed frames"

    native = jvm_run["tmp"] / "native.json"
    bench(rec["path"], runtime="litert", runs=20, warmup=2, output=native)
    html = report([native, jvm_run["bench"]], jvm_run["tmp"] / "report")
    md = (html.parent / "report.md").read_text()
    rows = [ln for ln in md.splitlines() if ln.startswith("|") and "(per frame)" in ln and "litert" in ln]
    assert len(rows) == 2, md  # the native row and the phone's, both per frame
    assert f"{ok['p50_ms']:.3f}" in next(r for r in rows if "android_bench" in r)
    assert "Android 14" in md and "Tensor G3" in md
    assert "no timed frames" in md

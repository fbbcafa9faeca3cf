"""``edgekit demo`` (issue 10, sections 1 and 3): the browser demo of a streaming gesture model.

The end-to-end test starts ``edgekit demo`` as a real process, opens its page in Debian's
headless Chromium (driven by playwright-core, ``web/headless.mjs``) with a fake camera that
plays a synthetic gesture clip (``.y4m``), and checks that the page recognises the gesture,
shows its latency, and that its per-frame logits on the frames it processed equal
ai-edge-litert's on the same preprocessed frames within the fp32 parity gate. Frames pushed
through the page's test hook (``window.edgekitDemo.pushFrames``) compare exactly, free of
camera timing; LiteRT.js's own preprocessing is checked against edgekit's eval transform.
CI installs Chromium and builds ``web/`` (``npm ci && npm run build``) before the tests.
"""
from __future__ import annotations

import base64
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

from edgekit.demo.server import STATIC, check_static
from edgekit.errors import EdgekitError

REPO = Path(__file__).resolve().parents[1]
WEB = REPO / "web"
CHROMIUM = "/usr/bin/chromium"
GESTURE_CLASSES = "swipe_down+rotate_cw+no_gesture"
TRAIN = f"gestures:n=300,frames=8,classes={GESTURE_CLASSES}"  # n=200 trained to 76.9 % on an AVX2 CPU
EPOCHS = 10
UPSCALE = 4  # the fake camera plays the 32 px clip at 128 px


# ---------------------------------------------------------------- helpers

def write_y4m(path: Path, frames: np.ndarray, fps: int = 20) -> Path:
    """Frames ``(L, H, W, 3)`` uint8 RGB as a YUV 4:2:0 ``.y4m`` (BT.601 limited range, chroma
    averaged over 2x2 blocks): what Chromium's fake camera reads and repeats."""
    rgb = frames.astype(np.float64)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = 16 + 0.257 * r + 0.504 * g + 0.098 * b
    u = 128 - 0.148 * r - 0.291 * g + 0.439 * b
    v = 128 + 0.439 * r - 0.368 * g - 0.071 * b
    n, h, w = y.shape
    sub = lambda c: c.reshape(n, h // 2, 2, w // 2, 2).mean((2, 4))  # noqa: E731
    planes = [np.clip(np.round(p), 0, 255).astype(np.uint8) for p in (y, sub(u), sub(v))]
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for i in range(n):
            f.write(b"FRAME\n")
            for p in planes:
                f.write(p[i].tobytes())
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_cli(*args: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgekit", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


class DemoProcess:
    """``edgekit demo`` running as a subprocess until :meth:`stop`; ready once it prints its URL."""

    def __init__(self, model: Path, host: str, port: int, env: dict | None = None) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "edgekit", "demo", "--model", str(model), "--host", host,
                                      "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env={**os.environ, **(env or {})})
        self.lines: list[str] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise AssertionError(f"edgekit demo exited: {self.proc.stderr.read()}")
            self.lines.append(line.rstrip("\n"))
            if line.startswith("serving at "):
                self.url = line.split()[2]
                return
        raise AssertionError("edgekit demo did not print its URL")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def requirements() -> None:
    """The browser test needs the built page and Chromium (CI installs both)."""
    check_static(STATIC)
    if not (WEB / "node_modules" / "playwright-core").is_dir():
        raise AssertionError("web/node_modules is missing: cd web && npm ci && npm run build")
    if not Path(CHROMIUM).is_file():
        raise AssertionError(f"{CHROMIUM} is missing: apt-get install -y chromium")


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def demo_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A causal TSM (compact_cnn, 32 px, 4 frames) trained on three gestures, exported as a streaming
    fp32 .tflite with its manifest."""
    from edgekit.exporters.pipeline import export
    from edgekit.training.trainer import train

    root = tmp_path_factory.mktemp("demo")
    ckpt = train("tsm_compact_cnn", TRAIN, root / "tsm.pt", epochs=EPOCHS, batch_size=16, frames=4,
                 shift="causal", precise_bn=2, progress=False)
    assert ckpt.metrics["val_top1"] >= 80, ckpt.metrics  # the gesture assertion below means something
    export(root / "tsm.pt", "tflite", output_dir=root / "export", streaming=True, parity_size=8)
    return root / "export"


@pytest.fixture(scope="module")
def artifact(demo_export: Path) -> Path:
    return next(demo_export.glob("*.stream.fp32.tflite"))


@pytest.fixture(scope="module")
def manifest(artifact: Path) -> dict:
    from edgekit.exporters.manifest import find_manifest

    return find_manifest(artifact)[0]


def preprocess(manifest: dict, frames: np.ndarray) -> np.ndarray:
    """edgekit's eval transform of uint8 RGB frames ``(L, H, W, 3)`` -> ``(L, 3, h, w)`` float32."""
    from torchvision import tv_tensors

    from edgekit.data.transforms import eval_transform

    video = tv_tensors.Video(torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2))
    return eval_transform(manifest["input_spec"])(video).as_subclass(torch.Tensor).numpy()


def litert_logits(artifact: Path, manifest: dict, frames: np.ndarray, resets: set[int] = frozenset(),
                  feedback: bool = True) -> np.ndarray:
    """ai-edge-litert's per-frame logits over preprocessed ``frames`` ``(L, 3, H, W)``, each output
    state fed back as the manifest wires it (``feedback=False``: zeros every call, a mis-wired app);
    zero states at frame 0 and at each index in ``resets``."""
    from edgekit.exporters.stream_runners import TFLiteStream, run_stream
    from edgekit.exporters.streaming import wiring_of

    runner, wiring = TFLiteStream(artifact, threads=1), wiring_of(manifest)
    cuts = sorted({0, *resets, len(frames)})
    return np.concatenate([run_stream(runner, wiring, frames[a:b], feedback) for a, b in zip(cuts, cuts[1:])
                           if b > a])


def assert_parity(page: np.ndarray, ref: np.ndarray, name: str) -> dict:
    """The fp32 parity gate of ``edgekit export`` on per-frame logits (raises when it fails)."""
    from edgekit.exporters import parity

    nums = parity.parity_numbers(ref, page, "classify")
    parity.gate(name, "fp32", nums, None, "classify")
    return nums


def shown_labels(logits: np.ndarray) -> list[int]:
    """The labels edgekit's smoother shows over one stream of per-frame logits."""
    from edgekit.evaluation.smoothing import smooth

    return smooth(torch.from_numpy(np.asarray(logits, np.float32))[None])[0].tolist()


def stream_frames(clip: np.ndarray, stride: int, loops: int) -> np.ndarray:
    """The frames a stream at ``stride`` processes from ``clip`` played ``loops`` times in a row."""
    from edgekit.evaluation.streaming import stream_indices

    return np.concatenate([clip[stream_indices(len(clip), stride)]] * loops)


@pytest.fixture(scope="module")
def gesture(artifact: Path, manifest: dict) -> tuple[np.ndarray, int]:
    """A fresh ``swipe_down`` clip (not in the training data: another seed) that ai-edge-litert
    recognises when it loops, as the fake camera plays it; most such clips must be recognised."""
    from edgekit.data.gestures import gestures

    data = gestures(GESTURE_CLASSES, n=15, size=32, frames=8, seed=1234)
    target = data.labels.index("swipe_down")
    stride = manifest["reset"]["process_every"]
    hits = []
    for clip in data.clips[target::len(data.labels)]:
        raw = stream_frames(clip, stride, 3)
        shown = shown_labels(litert_logits(artifact, manifest, preprocess(manifest, raw)))
        hits.append(shown[-1] == target)
    assert sum(hits) >= 3, hits  # the model does know the gesture
    return data.clips[target::len(data.labels)][hits.index(True)], target


def run_browser(tmp_path: Path, url: str, *, y4m: Path | None = None, camera_frames: int = 0,
                until_gesture: str | None = None, push: list[np.ndarray] | None = None,
                timeout_ms: int = 60000) -> dict:
    """Open ``url`` in headless Chromium (web/headless.mjs): camera frames until ``camera_frames``
    are processed and the page shows ``until_gesture`` (or ``timeout_ms`` passes), then the
    ``push`` frames; returns what the page exposed."""
    cfg = {"url": url, "chromium": CHROMIUM, "y4m": str(y4m) if y4m else None, "out_dir": str(tmp_path),
           "user_data_dir": str(tmp_path / "chromium-profile"), "camera_frames": camera_frames,
           "until_gesture": until_gesture, "timeout_ms": timeout_ms}
    if push is not None:
        frames = [{"width": int(f.shape[1]), "height": int(f.shape[0]),
                   "rgb": base64.b64encode(np.ascontiguousarray(f, np.uint8).tobytes()).decode()} for f in push]
        (tmp_path / "push.json").write_text(json.dumps(frames))
        cfg["push"] = str(tmp_path / "push.json")
    (tmp_path / "headless.json").write_text(json.dumps(cfg))
    proc = subprocess.run(["node", str(WEB / "headless.mjs"), str(tmp_path / "headless.json")], cwd=WEB,
                          capture_output=True, text=True, timeout=timeout_ms / 1000 + 60)
    out = tmp_path / "result.json"
    assert out.is_file(), proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert proc.returncode == 0 and not result["errors"], (result["errors"], result["console"][:5])
    return result


# ---------------------------------------------------------------- the page in headless Chromium

def test_demo_recognises_gesture_in_headless_chromium(tmp_path: Path, artifact: Path, manifest: dict,
                                                      gesture: tuple[np.ndarray, int]) -> None:
    requirements()
    clip, target = gesture
    labels = manifest["labels"]
    stride = manifest["reset"]["process_every"]
    y4m = write_y4m(tmp_path / "clip.y4m", clip.repeat(UPSCALE, 1).repeat(UPSCALE, 2))
    pushed = stream_frames(clip, stride, 3)
    odd = np.random.default_rng(0).integers(0, 256, (40, 48, 3), dtype=np.uint8)  # a real resize, 48x40 -> 32
    server = DemoProcess(artifact.parent, "127.0.0.1", free_port())
    try:
        res = run_browser(tmp_path, server.url, y4m=y4m, camera_frames=24, until_gesture=labels[target],
                          push=[*pushed, odd], timeout_ms=30000)
    finally:
        server.stop()
    cam = res["camera"]
    assert cam["error"] is None and cam["accelerator"] in ("wasm", "webgpu", "webgpu+wasm")
    assert cam["text"]["accelerator"].startswith(cam["accelerator"])

    # the camera: the gesture recognised, a latency shown
    frames = [f for f in cam["frames"] if f["source"] == "camera"]
    assert len(frames) >= 24
    assert cam["text"]["gesture"] == labels[target], (res.get("wait_error"), cam["text"],
                                                      [f["shown"] for f in frames])
    assert re.fullmatch(r"\d+\.\d\d ms p50 · \d+\.\d\d ms p90", cam["text"]["latency"]), cam["text"]
    assert 0 < cam["stats"]["p50_ms"] <= cam["stats"]["p90_ms"] and cam["stats"]["fps"] > 0
    assert len(cam["timings"]) == len(cam["frames"])

    # ... and its logits on the camera frames it processed = ai-edge-litert's on the same inputs,
    # with the states reset where the page reset them
    kept = cam["inputs"]
    assert len(kept) >= 16 and [k["index"] for k in kept] == list(range(len(kept)))
    resets = {r["at"] for r in cam["resets"] if r["at"] < len(kept)}
    assert 0 in resets
    inputs = np.asarray([k["data"] for k in kept], np.float32).reshape(len(kept), *manifest["frame_input"]["shape"][1:])
    ref = litert_logits(artifact, manifest, inputs, resets)
    assert_parity(np.asarray([f["logits"] for f in cam["frames"][:len(kept)]], np.float32), ref, "camera frames")

    # pushed frames: the page's preprocessing = edgekit's eval transform, its logits = ai-edge-litert's
    push = res["pushed"]
    assert len(push) == len(pushed) + 1 and push[0]["reset"]
    page_in = np.asarray([p["input"] for p in push[:-1]], np.float32).reshape(len(pushed), 3, 32, 32)
    ours = preprocess(manifest, pushed)
    np.testing.assert_allclose(page_in, ours, atol=1e-5)
    odd_in = np.asarray(push[-1]["input"], np.float32).reshape(3, 32, 32)
    std = np.asarray(manifest["input_spec"]["std"], np.float32)[:, None, None]
    assert np.abs(odd_in - preprocess(manifest, odd[None])[0]).max() <= 1.01 / 255 / std.min()  # one uint8 step
    page_logits = np.asarray([p["logits"] for p in push], np.float32)
    ref = litert_logits(artifact, manifest, np.concatenate([ours, preprocess(manifest, odd[None])]))
    nums = assert_parity(page_logits[:-1], ref[:-1], "pushed frames")
    assert nums["top1_agreement"] == 1.0
    with pytest.raises(EdgekitError):  # the gate has teeth: states not fed back fail it
        assert_parity(page_logits[:-1], litert_logits(artifact, manifest, ours, feedback=False), "no feedback")
    assert [p["shown"] for p in push[:-1]] == shown_labels(ref[:-1])  # the page's smoother = edgekit's
    assert push[-2]["shown"] == target and labels[push[-2]["shown"]] == "swipe_down"

    for name in ("camera.png", "pushed.png"):
        png = tmp_path / name
        assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("EDGEKIT_DEMO_SCREENSHOT"):  # refresh docs/demo.png
        shutil.copy(tmp_path / "camera.png", os.environ["EDGEKIT_DEMO_SCREENSHOT"])


# ---------------------------------------------------------------- the server and its errors

def test_demo_https_certificate_made_once(tmp_path: Path, artifact: Path) -> None:
    """Off localhost the server speaks HTTPS with a certificate made once under $XDG_CACHE_HOME
    and reused; it serves the page (which runs in Chromium over HTTPS), the model and a manifest
    wired by LiteRT.js signature names."""
    requirements()
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    cert = tmp_path / "cache" / "edgekit" / "demo" / "cert.pem"
    port = free_port()
    server = DemoProcess(artifact.parent, "0.0.0.0", port, env)
    try:
        assert server.url.startswith("https://") and any("Proceed" in line for line in server.lines)
        assert any("every network interface" in line and "--host 127.0.0.1" in line for line in server.lines)
        assert any("▀" in line or "▄" in line for line in server.lines)  # the QR code
        tls = ssl.create_default_context(cafile=str(cert))  # verifies against the generated certificate
        base = f"https://127.0.0.1:{port}/"
        page = urllib.request.urlopen(base, context=tls, timeout=10).read().decode()
        assert "app.js" in page
        doc = json.loads(urllib.request.urlopen(base + "model/manifest.json", context=tls, timeout=10).read())
        model = urllib.request.urlopen(base + "model/model.tflite", context=tls, timeout=10).read()
        page = run_browser(tmp_path, base, camera_frames=3)["camera"]  # Chromium's own fake camera, over HTTPS
    finally:
        server.stop()
    assert page["error"] is None and page["stats"]["frames"] >= 3 and "ms p50" in page["text"]["latency"]
    assert model == artifact.read_bytes()
    assert [s["signature_input"] for s in doc["states"]] and doc["frame_input"]["signature"].startswith("args_")
    assert all(s["input"].endswith(s["signature_input"]) for s in doc["states"])  # serving_default_<key>
    assert doc["smoothing"] == {"window": 12, "agree": 2}
    first = cert.read_bytes()
    server = DemoProcess(artifact.parent, "0.0.0.0", free_port(), env)
    server.stop()
    assert cert.read_bytes() == first  # kept per machine, not remade


def test_demo_errors_are_one_line(tmp_path: Path, artifact: Path) -> None:
    """A missing or non-streaming model, a busy port and an unwritable certificate folder end
    with one line and exit 2."""
    missing = run_cli("demo", "--model", str(tmp_path / "nope"), "--host", "127.0.0.1")
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "m.tflite").write_bytes(artifact.read_bytes())
    (plain / "m.tflite.json").write_text(json.dumps({"file": "m.tflite", "target": "tflite"}))
    not_streaming = run_cli("demo", "--model", str(plain / "m.tflite"), "--host", "127.0.0.1")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        busy = run_cli("demo", "--model", str(artifact.parent), "--host", "127.0.0.1", "--port",
                       str(s.getsockname()[1]))
    blocker = tmp_path / "file"
    blocker.write_text("")
    no_cert = run_cli("demo", "--model", str(artifact.parent), "--port", str(free_port()),
                      env={"XDG_CACHE_HOME": str(blocker)})  # a file where the folder should be
    for res, words in ((missing, "no such export folder"), (not_streaming, "not a streaming model"),
                       (busy, "already in use"), (no_cert, "cannot write the demo certificate")):
        assert res.returncode == 2, (res.stdout, res.stderr)
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and words in lines[0] and "Traceback" not in res.stderr, res.stderr


def test_demo_on_every_interface_says_so() -> None:
    """Listening on 0.0.0.0 (the default, so that a phone reaches it) is said on start: every device
    on the network can open it, the address for the phone, and the option that keeps it local."""
    from types import SimpleNamespace

    from edgekit.demo.server import exposure_line

    line = exposure_line(SimpleNamespace(host="0.0.0.0", port=8443, url="https://192.168.1.20:8443/"))
    assert "every network interface" in line and "https://192.168.1.20:8443/" in line
    assert "--host 127.0.0.1" in line and "\n" not in line


def test_demo_unbuilt_page_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(EdgekitError, match=r"npm ci && npm run build"):
        check_static(tmp_path)


def test_page_preprocessing_matches_eval_transform(tmp_path: Path) -> None:
    """web/src/preprocess.js (run by node) against edgekit's eval transform: shorter-side resize
    (down and up), centre crop, direct [H, W] resize; within one uint8 step of rounding."""
    from edgekit.data.transforms import make_input_spec

    requirements()
    rng = np.random.default_rng(0)
    cases = [(make_input_spec(32, crop_ratio=0.875), (61, 80)), (make_input_spec(24, crop_ratio=0.875), (20, 17)),
             (make_input_spec(32), (45, 33))]
    payload = []
    for spec, (h, w) in cases:
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        payload.append({"spec": spec, "h": h, "w": w, "rgb": img.ravel().tolist()})
    (tmp_path / "cases.json").write_text(json.dumps(payload))
    script = ("import {preprocess} from './src/preprocess.js'; import {readFileSync} from 'node:fs';"
              "const cases = JSON.parse(readFileSync(process.argv[1], 'utf8'));"
              "console.log(JSON.stringify(cases.map((c) => Array.from(preprocess(Uint8Array.from(c.rgb), c.h, c.w, 3, "
              "c.spec)))));")
    out = subprocess.run(["node", "--input-type=module", "-e", script, str(tmp_path / "cases.json")], cwd=WEB,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    for (spec, (h, w)), got, case in zip(cases, json.loads(out.stdout), payload):
        img = np.asarray(case["rgb"], np.uint8).reshape(1, h, w, 3)
        want = preprocess({"input_spec": spec}, img)[0]
        got = np.asarray(got, np.float32).reshape(want.shape)
        steps = np.abs(got - want) * np.asarray(spec["std"], np.float32)[:, None, None] * 255
        assert steps.max() <= 1.01 and (steps > 0.5).mean() < 0.005, (spec["resize"], h, w, steps.max())  # exact on AVX2


# ---------------------------------------------------------------- edgekit bench --runtime browser

def test_bench_runtime_browser_rows_beside_native(tmp_path: Path, artifact: Path) -> None:
    """``edgekit bench --runtime litert,browser --browser chromium``: a native row and a LiteRT.js
    row (delegate wasm, device and browser from the user agent, every run's latency, init and
    first run), per frame with the states fed back, and ``edgekit report`` puts them side by side."""
    requirements()
    rows_path = tmp_path / "rows.json"
    res = run_cli("bench", str(artifact), "--runtime", "litert,browser", "--browser", "chromium", "--runs", "30",
                  "--warmup", "3", "-o", str(rows_path), timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    rows = json.loads(rows_path.read_text())["rows"]
    native, web = sorted(rows, key=lambda r: r["runtime"] != "litert")
    assert native["runtime"] == "litert" and native["error"] is None
    assert web["runtime"] == "litertjs" and web["error"] is None and web["delegate"] == "wasm", web.get("error")
    assert web["browser"].startswith("HeadlessChrome ") and "Linux" in web["device"]
    assert len(web["latencies_ms"]) == web["timed_runs"] == 30 and web["warmup_runs"] == 3
    assert web["per"] == "frame" and web["streaming"] is True
    assert 0 < web["p50_ms"] <= web["p90_ms"] and web["init_ms"] > 0 and web["first_run_ms"] > 0
    report = run_cli("report", str(rows_path), "-o", str(tmp_path / "report"))
    assert report.returncode == 0, report.stderr
    md = (tmp_path / "report" / "report.md").read_text()
    assert "| litertjs | wasm |" in md and "| litert | xnnpack |" in md
    assert f"{web['device']} ({web['browser']}) |" in md  # where the browser row ran, in its own column


def test_bench_browser_errors(tmp_path: Path, artifact: Path) -> None:
    """Not a .tflite, an unknown browser: one line each."""
    from edgekit.demo.bench import bench_in_browser, describe_user_agent

    with pytest.raises(EdgekitError, match=r"\.tflite"):
        bench_in_browser(tmp_path / "m.onnx", browser="chromium")
    with pytest.raises(EdgekitError, match="starts chromium"):
        bench_in_browser(artifact, browser="netscape")
    phone = ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
             "Chrome/131.0.0.0 Mobile Safari/537.36")
    assert describe_user_agent(phone) == {"device": "Android Pixel 8", "browser": "Chrome 131.0.0.0"}


def test_int8_io_model_is_refused_in_one_line(tmp_path: Path, demo_export: Path) -> None:
    """LiteRT.js 2.5 passes no int8 tensors: a full-integer streaming export ends with one line
    pointing at the fp32/fp16 export (in the demo and the browser bench alike)."""
    from edgekit.demo.bench import bench_in_browser
    from edgekit.exporters.pipeline import export

    rec = export(demo_export.parent / "tsm.pt", "tflite", precision="int8", output_dir=tmp_path, streaming=True,
                 parity_size=4, calib_size=4)[0]
    res = run_cli("demo", "--model", rec["path"], "--host", "127.0.0.1", "--port", str(free_port()))
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert "is int8" in res.stderr and "fp32 or fp16" in res.stderr
    with pytest.raises(EdgekitError, match="is int8"):
        bench_in_browser(rec["path"], browser="chromium", timeout=5)


#: Paths an attacker on the phone's network would try: parent folders, encodings, the package's
#: own sources, absolute paths, a NUL byte. Only the page, its WASM runtime and the model are served.
TRAVERSAL_PROBES = [
    "/../../../../etc/passwd", "/..%2f..%2f..%2fetc%2fpasswd", "/%2e%2e/%2e%2e/etc/passwd",
    "/%252e%252e/%252e%252e/etc/passwd", "/..\\..\\..\\etc\\passwd", "/wasm/../../../etc/passwd",
    "/wasm/..%2f..%2fserver.py", "/wasm/%2e%2e/%2e%2e/server.py", "/model/../server.py",
    "/model/..%2f..%2f__init__.py", "/model/model.tflite/../../server.py", "//etc/passwd", "///etc/passwd",
    "/etc/passwd", "/static/../server.py", "/static/index.html", "/../server.py", "/..%5cserver.py",
    "/index.html%00.js", "/app.js%00", "/app.js/..", "/app.js/../../cert.py", "/wasm/", "/wasm",
    "/model/", "/model", "/.", "/..", "/./app.js/../../server.py", "/%2e/%2e%2e/server.py",
    "/wasm/litert_wasm_internal.wasm/../../../server.py", "/~root/.ssh/id_rsa", "/proc/self/environ",
    "/%2Fetc%2Fpasswd", "/model/manifest.json/..%2f..%2fserver.py", "/.git/config", "/../../.git/config",
    "/__init__.py", "/server.py", "/cert.py",
]


def test_demo_server_serves_no_file_outside_its_routes(artifact: Path) -> None:
    """Every probe gets 404 and no byte of a file outside the page, its runtime and the model."""
    import http.client

    from edgekit.demo.server import DemoServer

    check_static(STATIC)
    assert len(TRAVERSAL_PROBES) == 40
    server = DemoServer(artifact.parent, "127.0.0.1", 0)
    server.start()
    try:
        secrets = [Path("/etc/passwd").read_bytes()[:64]] + \
                  [p.read_bytes()[:200] for p in Path(STATIC).parent.glob("*.py")]
        for probe in TRAVERSAL_PROBES:
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
            conn.request("GET", probe)
            res = conn.getresponse()
            body = res.read()
            conn.close()
            assert res.status == 404, (probe, res.status)
            assert not any(s and s in body for s in secrets), probe
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        conn.request("GET", "/app.js")
        assert conn.getresponse().status == 200  # the probes above are refused, not the server down
        conn.close()
    finally:
        server.stop()

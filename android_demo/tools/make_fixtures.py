"""Fixtures for the JVM tests of android_demo/core, computed by edgekit itself.

    python android_demo/tools/make_fixtures.py MODEL.stream.fp32.tflite.json OUT_DIR

reads a streaming export (``edgekit export CKPT --target tflite --streaming -o DIR``) and
writes into ``OUT_DIR`` what the Kotlin logic must reproduce:

* ``manifest.json``: the real manifest; ``manifest_crop.json``: the same with an
  ImageNet-style preprocessing (shorter side resize, then centre crop) to cover that path;
* ``frame_K.rgb`` camera frames (uint8 RGB, several sizes: down- and upscaled, not square),
  ``frame_K.M.resized`` their uint8 pixels after edgekit's resize and crop, and
  ``frame_K.M.f32`` the float32 NCHW tensor of edgekit's eval transform of one frame (the
  clip spec's per-frame transform, applied to the frame as a one-frame video, as clips are);
* ``stream_T.f32``: the tensors fed to and returned by the real ``.tflite`` (ai-edge-litert,
  edgekit's stream runner, states fed back by the manifest's names) over one real clip, per
  step and per tensor name, and the clip's camera frames (``clip_I.rgb``, 64 px: resized to
  the model's size like a camera frame);
* ``manifest_int8.json``: the manifest with int8 tensors (quantization fields written by
  edgekit's exporter code), and edgekit's quantize / dequantize of values at those scales;
* the smoother's labels (``edgekit.evaluation.smoothing.smooth``) for random and real logits, the
  latency statistics (``edgekit.benchmark.stats.summarize``), and the frames a stream at the
  manifest's ``process_every`` processes (``edgekit.evaluation.streaming.stream_indices``);
* ``fixtures.json``: the index of all of it.

Raw files are little-endian; nothing here is committed (the tests write it into a tmp dir).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np


def _frames(size_hw: tuple[int, int]) -> list[np.ndarray]:
    """Camera frames: gesture frames (real content) cut and scaled to odd sizes, and noise."""
    from edgekit.data.gestures import gestures

    c = np.asarray(gestures(n=22, size=64).clips[0])  # (frames, H, W, 3) uint8
    rng = np.random.default_rng(0)
    out = [np.ascontiguousarray(c[3][:48, :64]),  # 48x64 (H, W): downscale
           np.ascontiguousarray(c[5][5:42, 3:56])]  # 37x53: odd sizes
    out.append(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8))  # a VGA camera frame
    out.append(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8))  # upscale
    out.append(rng.integers(0, 256, (size_hw[0], size_hw[1], 3), dtype=np.uint8))  # the model's size: no resize
    return out


def _eval_frame(spec: dict, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """edgekit's per-frame eval transform of one uint8 HWC frame: (uint8 after resize+crop, float tensor)."""
    import torch
    from torchvision import tv_tensors
    from torchvision.transforms import v2 as T

    from edgekit.data.transforms import eval_transform

    video = tv_tensors.Video(torch.from_numpy(frame)[None].permute(0, 3, 1, 2))
    tensor = eval_transform(spec)(video).as_subclass(torch.Tensor)[0].numpy().astype("<f4")
    # the same steps without the scaling: the pixels the resize and crop give
    resize = spec["resize"]
    steps = [T.Resize(resize if isinstance(resize, int) else tuple(resize), antialias=True)]
    if spec.get("crop"):
        steps.append(T.CenterCrop(spec["crop"]))
    pixels = T.Compose(steps)(video).as_subclass(torch.Tensor)[0].permute(1, 2, 0).numpy()
    return np.ascontiguousarray(pixels, dtype=np.uint8), tensor


def _int8(manifest: dict, runner, wiring: dict, out: Path, rng: np.random.Generator) -> dict:
    """An int8 variant of the manifest, its tensor fields written by edgekit's own exporter code
    from the real runner's tensors given int8 scales (an int8 export of the tiny model takes
    half a minute), and edgekit's quantize / dequantize of some values with those scales."""
    from edgekit.exporters.runtimes import _dequantize, _quantize
    from edgekit.exporters.streaming import _state_records, _tensor

    class Int8:
        runtime = "litert"

    def q(names: dict, offset: float) -> dict:
        return {n: {**d, "dtype": "int8", "quantization": (round(0.013 + offset + 0.007 * k, 6), k % 5 - 2)}
                for k, (n, d) in enumerate(names.items())}

    fake = Int8()
    fake.inputs, fake.outputs = q(runner.inputs, 0.0), q(runner.outputs, 0.002)
    # the last state's output takes its input's scale: that state is fed back "as is"
    last = wiring["states"][-1]
    same = fake.inputs[last["input"]]["quantization"]
    fake.outputs[last["output"]] = {**fake.outputs[last["output"]], "quantization": same}
    states = _state_records(fake, wiring)
    int8 = {**manifest, "precision": "int8", "states": states,
            "frame_input": _tensor(fake, wiring["frame"], "in", layout="NCHW"),
            "logits_output": _tensor(fake, wiring["logits"], "out")}
    (out / "manifest_int8.json").write_text(json.dumps(int8, indent=1))
    x = np.concatenate([rng.normal(0, 1.5, 200), np.arange(-40, 41) * 0.0065, [0.0, 1e3, -1e3]]).astype(np.float32)
    cases = []
    for name, d in list(fake.inputs.items()) + list(fake.outputs.items()):
        qx = _quantize(x, d)
        cases.append({"scale": d["quantization"][0], "zero_point": d["quantization"][1], "x": x.astype(float).tolist(),
                      "q": qx.astype(int).tolist(), "dq": _dequantize(qx, d).astype(float).tolist()})
    return {"manifest_int8": "manifest_int8.json", "quantize": cases}


def main(manifest_path: str, out_dir: str) -> None:
    import torch

    from edgekit.benchmark.stats import summarize
    from edgekit.data.clips import frame_spec
    from edgekit.data.transforms import make_input_spec, preprocessing
    from edgekit.exporters.stream_runners import open_stream
    from edgekit.exporters.streaming import wiring_of
    from edgekit.evaluation.smoothing import smooth
    from edgekit.evaluation.streaming import stream_indices

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    manifest = json.loads(Path(manifest_path).read_text())
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    spec = frame_spec(manifest["input_spec"]["clip_spec"])
    h, w = spec["shape"][1:]
    crop_spec = make_input_spec(h, crop_ratio=0.875)
    (out / "manifest_crop.json").write_text(json.dumps({**manifest, "preprocessing": {**preprocessing(crop_spec),
                                                                                        "layout": "NCHW"}}, indent=1))
    index: dict = {"manifest": "manifest.json", "manifest_crop": "manifest_crop.json", "frames": []}

    for k, frame in enumerate(_frames((h, w))):
        (out / f"frame_{k}.rgb").write_bytes(frame.tobytes())
        entry = {"file": f"frame_{k}.rgb", "height": frame.shape[0], "width": frame.shape[1], "cases": []}
        for m, (name, s) in enumerate((("manifest", spec), ("manifest_crop", crop_spec))):
            pixels, tensor = _eval_frame(s, frame)
            (out / f"frame_{k}.{m}.resized").write_bytes(pixels.tobytes())
            (out / f"frame_{k}.{m}.f32").write_bytes(tensor.tobytes())
            entry["cases"].append({"manifest": index[name], "resized": f"frame_{k}.{m}.resized",
                                   "resized_hw": list(pixels.shape[:2]), "tensor": f"frame_{k}.{m}.f32"})
        index["frames"].append(entry)

    # the real artifact over one real clip, states fed back by name: every feed and output per step
    from edgekit.data.gestures import gestures

    clip = np.asarray(gestures(n=22, size=64).clips[1])
    artifact = Path(manifest_path).with_name(manifest["file"])
    runner, wiring = open_stream(artifact), wiring_of(manifest)
    every = int(manifest["reset"]["process_every"])
    state = {s["input"]: np.zeros(runner.inputs[s["input"]]["shape"], np.float32) for s in wiring["states"]}
    steps, logits = [], []
    for t, i in enumerate(stream_indices(len(clip), every)):
        _, x = _eval_frame(spec, np.ascontiguousarray(clip[i]))
        feeds = {wiring["frame"]: x[None], **state}
        res = runner.run(feeds)
        step = {"inputs": {}, "outputs": {}}
        for side, tensors in (("inputs", feeds), ("outputs", res)):
            for name, v in tensors.items():
                f = f"stream_{t}.{side}.{len(step[side])}.f32"
                (out / f).write_bytes(np.asarray(v, "<f4").tobytes())
                step[side][name] = f
        steps.append(step)
        logits.append(res[wiring["logits"]].reshape(-1))
        state = {s["input"]: res[s["output"]] for s in wiring["states"]}
    for i, f in enumerate(clip):  # the camera frames themselves, for a replay of the app's loop
        (out / f"clip_{i}.rgb").write_bytes(np.ascontiguousarray(f).tobytes())
    index["stream"] = {"clip_frames": len(clip), "height": clip.shape[1], "width": clip.shape[2],
                       "camera_frames": [f"clip_{i}.rgb" for i in range(len(clip))],
                       "processed": stream_indices(len(clip), every), "steps": steps}
    real = torch.from_numpy(np.stack(logits))[None]
    index["stream"]["smoothed"] = smooth(real).tolist()[0]

    rng = np.random.default_rng(1)
    smoothing = []
    for window, agree, classes, length in ((12, 2, 11, 40), (4, 3, 5, 60), (1, 1, 3, 20), (3, 2, 2, 50)):
        x = rng.normal(size=(length, classes)).astype(np.float32) * 0.7
        x[length // 2:, 1] += 0.8  # a change of gesture half way
        smoothing.append({"window": window, "agree": agree, "logits": x.astype(float).tolist(),
                          "labels": smooth(torch.from_numpy(x)[None], window, agree).tolist()[0]})
    index["smoothing"] = smoothing

    latencies = []
    for n in (1, 2, 7, 50, 333):
        lat = rng.lognormal(0.0, 0.4, n).round(6)
        latencies.append({"latencies_ms": lat.tolist(), "summary": summarize(lat.tolist())})
    index["latency"] = latencies

    index.update(_int8(manifest, runner, wiring, out, rng))
    index["stream_indices"] = [{"length": n, "stride": s, "indices": stream_indices(n, s)}
                               for n in (1, 5, 16, 17) for s in (1, 2, 3, every)]
    (out / "fixtures.json").write_text(json.dumps(index, indent=1))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__.split("\n\n")[1])
    main(sys.argv[1], sys.argv[2])

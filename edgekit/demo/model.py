"""The model a demo serves: a streaming ``.tflite`` from an export folder and its page manifest.

The export manifest names each tensor as the artifact's *tensor* (what ai-edge-litert's
Interpreter reports, e.g. ``serving_default_args_1``); LiteRT.js runs a model's default
*signature* and names inputs and outputs by their signature keys (``args_1``,
``output_1``). :func:`signature_names` reads that correspondence from the flatbuffer's
SignatureDef, so the page wires every state by name, never by position.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import EdgekitError
from ..exporters.manifest import find_manifest
from ..evaluation.smoothing import DEFAULT_AGREE, DEFAULT_WINDOW

__all__ = ["DemoModel", "load_bench_model", "load_demo_model", "page_manifest", "signature_names"]


@dataclass(frozen=True)
class DemoModel:
    """A streaming TFLite artifact and the manifest the page reads (``page_manifest``)."""

    path: Path
    manifest: dict[str, Any]
    page_manifest: dict[str, Any]


#: tensor element types LiteRT.js 2.5 can hand to or read from a model (float32, int32, uint8;
#: an int8-I/O model, edgekit's full-integer export, cannot run in the browser)
BROWSER_TYPES = {"FLOAT32", "INT32", "UINT8"}


def signature_names(path: Path) -> dict[str, dict[str, str]]:
    """``{"inputs": {tensor name: signature key}, "outputs": {...}}`` of the first signature
    of the ``.tflite`` at ``path`` (the one LiteRT.js runs by default); one line when one of
    them has an element type LiteRT.js cannot pass (:data:`BROWSER_TYPES`)."""
    from ai_edge_litert import schema_py_generated as schema

    try:
        model = schema.ModelT.InitFromPackedBuf(bytearray(path.read_bytes()), 0)
    except Exception as exc:
        raise EdgekitError(f"{path} is not a readable .tflite model ({type(exc).__name__})") from exc
    if not model.signatureDefs:
        raise EdgekitError(f"{path.name} has no signature; LiteRT.js runs a model by its signature")
    sig = model.signatureDefs[0]
    tensors = model.subgraphs[sig.subgraphIndex].tensors

    type_names = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}

    def names(maps: Any) -> dict[str, str]:
        out = {}
        for m in maps or []:
            kind = type_names.get(tensors[m.tensorIndex].type, "?")
            if kind not in BROWSER_TYPES:
                raise EdgekitError(f"{path.name}: LiteRT.js passes {', '.join(sorted(BROWSER_TYPES)).lower()} tensors, "
                                   f"and this model's {m.name.decode() if isinstance(m.name, bytes) else m.name} is "
                                   f"{kind.lower()} (a full-integer export); use its fp32 or fp16 export")
            tname = tensors[m.tensorIndex].name
            out[tname.decode() if isinstance(tname, bytes) else tname] = m.name.decode() \
                if isinstance(m.name, bytes) else m.name
        return out

    return {"inputs": names(sig.inputs), "outputs": names(sig.outputs)}


def _find_artifact(folder: Path) -> Path:
    if folder.is_file():
        return folder
    if not folder.is_dir():
        raise EdgekitError(f"--model {folder}: no such export folder")
    streaming = []
    for p in sorted(folder.glob("*.tflite")):
        if find_manifest(p)[0].get("streaming"):
            streaming.append(p)
    if not streaming:
        raise EdgekitError(f"--model {folder}: no streaming .tflite with its manifest; export one with "
                           "`edgekit export CKPT --target tflite --streaming -o DIR`")
    fp32 = [p for p in streaming if find_manifest(p)[0].get("precision") == "fp32"]
    return (fp32 or streaming)[0]


def load_demo_model(model: str | Path) -> DemoModel:
    """The streaming ``.tflite`` of export folder (or file) ``model``, its manifest checked and
    extended with the LiteRT.js signature names; one line when it is missing or not streaming."""
    path = _find_artifact(Path(model))
    if path.suffix != ".tflite":
        raise EdgekitError(f"--model {path}: the browser demo runs .tflite models (LiteRT.js), not {path.suffix}")
    manifest, _ = find_manifest(path)
    if not manifest:
        raise EdgekitError(f"--model {path}: no manifest beside it (export it with edgekit export)")
    if not manifest.get("streaming") or not manifest.get("states"):
        raise EdgekitError(f"--model {path.name} is not a streaming model; export a causal TSM with "
                           "`edgekit export CKPT --target tflite --streaming`")
    return DemoModel(path, manifest, page_manifest(path, manifest))


def page_manifest(path: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """What the page reads: labels, preprocessing, the reset rule, the smoother and, for a
    streaming model, its frame, logits and states with their LiteRT.js signature names."""
    page = {"model": manifest.get("model") or path.stem, "file": path.name, "precision": manifest.get("precision"),
            "labels": list(manifest.get("labels") or []), "input_spec": manifest.get("input_spec") or {},
            "preprocessing": manifest.get("preprocessing"), "states": [], "reset": manifest.get("reset") or {},
            "smoothing": {"window": DEFAULT_WINDOW, "agree": DEFAULT_AGREE}}
    if not manifest.get("streaming") or not manifest.get("states"):
        return page
    sig = signature_names(path)
    wanted_in = [manifest["frame_input"]["name"], *(s["input"] for s in manifest["states"])]
    wanted_out = [manifest["logits_output"]["name"], *(s["output"] for s in manifest["states"])]
    missing = [n for n in wanted_in if n not in sig["inputs"]] + [n for n in wanted_out if n not in sig["outputs"]]
    if missing:
        raise EdgekitError(f"{path.name}: its signature lacks the manifest's tensors {', '.join(missing)}")
    page.update(frame_input={**manifest["frame_input"], "signature": sig["inputs"][manifest["frame_input"]["name"]]},
                logits_output={**manifest["logits_output"],
                               "signature": sig["outputs"][manifest["logits_output"]["name"]]},
                states=[{**s, "signature_input": sig["inputs"][s["input"]],
                         "signature_output": sig["outputs"][s["output"]]} for s in manifest["states"]])
    return page


def load_bench_model(artifact: str | Path, warmup: int, runs: int) -> DemoModel:
    """Any ``.tflite`` (streaming or not) for the page's bench mode: ``warmup`` untimed and
    ``runs`` timed calls (a streaming model one frame per call, its states fed back)."""
    path = Path(artifact)
    if not path.is_file() or path.suffix != ".tflite":
        raise EdgekitError(f"{path}: the browser runs .tflite files (LiteRT.js)")
    manifest = find_manifest(path)[0]
    page = page_manifest(path, manifest)
    signature_names(path)  # element types the browser can pass, streaming or not
    page["bench"] = {"warmup": warmup, "runs": runs}
    return DemoModel(path, manifest, page)

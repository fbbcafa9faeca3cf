"""Streaming export: a causal TSM as its online model, one frame per call, its states as tensors.

``edgekit export m.ckpt --target tflite --streaming -o DIR`` exports the **online** model
of a causal TSM checkpoint (:func:`edgekit.models.temporal.to_online`: the same weights,
``forward(frame, *states) -> (logits, *new_states)``; Lin, Gan & Han, "TSM: Temporal Shift
Module for Efficient Video Understanding", ICCV 2019, section 4, online recognition), to
TFLite (fp32, fp16, int8), ONNX (fp32, fp16, int8) and Core ML. Streaming is a property of a
format (:mod:`edgekit.formats`: a target's ``stream_exporter``, a runtime's ``stream_runner``),
not a second pipeline: :class:`Streaming` plugs into the one export loop of
:func:`edgekit.exporters.pipeline.export` (staging folder, parity gate, manifest, move into
place) and holds only what streaming adds: the online model and its whole clips, the
converters of the online model (``convert_*``, named by the format table), the wiring read
back from the artifact, the frame-by-frame parity gate and the state records.

* **I/O.** One frame ``[1, C, H, W]`` and one 4-D state per shifted block in; the logits and
  one 4-D new state per block out (phone GPU delegates mishandle 5-D tensors). Batch 1.
* **Which tensor is which** is read back from the artifact (:func:`~edgekit.exporters.stream_runners.map_io`:
  shapes, then a numeric probe), never taken from the order: litert-torch lists its
  signature in string order (``args_1, args_10, args_2...``).
* **Phone GPU delegates** mishandle an input passed straight to an output and a tensor
  both used inside the graph and emitted. The online model has neither: a new state is
  the first C/8 channels of a block's input, its own slice, read by nothing else in the
  graph (the shifted concat reads the *previous* state and the other channels); the
  converters add their own layout op (TFLite: a transpose or reshape) in front of each
  output. :func:`state_graph_check` reads the written graph and records, per state
  output, that it is computed by an op, is no graph input, and no op consumes it; a
  violation is logged and written to the manifest.
* **int8** (TFLite): full-integer PT2E, calibrated by running the *prepared* graph over
  whole training clips frame by frame with its own new states fed back, so the state
  inputs are calibrated on the values they will really see (zeros and real features,
  not noise). The manifest records each state's input and output scale and zero point;
  when they differ an app requantizes (dequantize the output, quantize for the input).
  ONNX int8 (onnxruntime static QDQ, float I/O) is calibrated on the same kind of feeds:
  every frame of whole training clips with the states the fp32 model computed before it.
* **Parity gate** (:func:`stream_parity`): whole validation clips (every frame, in order),
  frame by frame through the artifact with each output state fed back, against the
  PyTorch online model; the thresholds of :mod:`edgekit.exporters.parity` on every
  frame's logits, plus the drift (the worst error at each frame index) and the clip-end
  agreement. A wrongly wired state fails it.
* **Reset rule** (:func:`reset_rule`): zeros at the start of every stream, and again
  after a gap in the frames; a stale state is flushed by itself after ``len(states)``
  frames.

A bidirectional TSM reads the next frame, and a TSN has no state: both are refused with
one line. Without ``--streaming`` a clip checkpoint exports its clip model (5-D input).
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from .. import formats
from ..checkpoint import Checkpoint
from ..data import DataBundle
from ..errors import EdgekitError
from . import parity as parity_mod
from .config import STREAM_CLIPS  # clips for calibration and the parity gate when not given
from .samples import checkpoint_data
from .stream_runners import map_io, open_stream, run_stream

log = logging.getLogger("edgekit.export")

#: clips calibrated in one batch (the prepared graph takes a dynamic batch)
CALIB_CHUNK = 32
FRAME, LOGITS = "frame", "logits"


# ---------------------------------------------------------------- the model and its data

def online_model(ckpt: Checkpoint) -> nn.Module:
    """The online model of ``ckpt`` (a causal TSM, or an online TSM already), else one line saying why not."""
    from ..data.clips import is_clip
    from ..models.temporal import NOT_CAUSAL, ClipNet, OnlineTSM, to_online

    model = ckpt.model
    if isinstance(model, OnlineTSM):
        return model.eval()
    if not isinstance(model, ClipNet) or not is_clip(ckpt.input_spec):
        raise EdgekitError(f"--streaming exports a video model one frame per call; {ckpt.arch} takes single "
                           "images: export it without --streaming")
    if model.shift is None:
        raise EdgekitError(f"{ckpt.arch} is a TSN: its frames never exchange features, so it has no state to "
                           "stream; export the clip model without --streaming, or train tsm_<backbone> --shift causal")
    if model.shift != "causal":
        raise EdgekitError(f"{ckpt.arch} cannot stream: {NOT_CAUSAL}")
    return to_online(model).eval()


def frame_input_spec(ckpt: Checkpoint) -> dict[str, Any]:
    """The per-frame image spec the streaming artifact takes."""
    from ..data.clips import frame_spec, is_clip

    return frame_spec(ckpt.input_spec) if is_clip(ckpt.input_spec) else dict(ckpt.input_spec)


def clip_stride(ckpt: Checkpoint, bundle: DataBundle) -> int:
    """Every how many camera frames the stream processes one: the training segment spacing
    (:func:`edgekit.evaluation.streaming.resolve_stride`, as ``edgekit eval --streaming`` uses)."""
    from ..evaluation.streaming import resolve_stride

    ds = bundle.val if len(bundle.val) else bundle.train
    lengths = [len(ds[i][0]) for i in range(min(len(ds), 64))]
    return resolve_stride("auto", lengths, int(ckpt.input_spec.get("frames") or 1))


def whole_clips(ckpt: Checkpoint, bundle: DataBundle, split: str, n: int, stride: int,
                seed: int = 0) -> tuple[list[torch.Tensor], list[Any]]:
    """Up to ``n`` clips of ``split`` (seeded pick), whole: every ``stride``-th frame in order to the
    last (:class:`edgekit.evaluation.streaming.StreamFrames`, the frames ``edgekit eval --streaming``
    processes), each through the per-frame eval preprocessing: ``(L, C, H, W)`` tensors, targets."""
    from ..data.clips import ArrayClip
    from ..evaluation.streaming import StreamFrames

    ds = bundle.train if split == "train" else bundle.val
    if len(ds) == 0:
        raise EdgekitError(f"the {split} split of {bundle.spec!r} is empty")
    frames = StreamFrames(ckpt.input_spec, stride)
    clips, targets = [], []
    for i in sorted(int(j) for j in np.random.default_rng(seed).permutation(len(ds))[: max(1, n)]):
        clip, target = ds[i]
        clips.append(frames(ArrayClip(clip) if isinstance(clip, np.ndarray) else clip).float().contiguous())
        targets.append(target)
    return clips, targets


class _Graph:
    """A graph of the online model (PT2E-prepared) with the online model's zero states."""

    def __init__(self, graph: Callable[..., Sequence[torch.Tensor]], online: nn.Module) -> None:
        self.graph, self.initial_states = graph, online.initial_states

    def __call__(self, *args: torch.Tensor) -> Sequence[torch.Tensor]:
        return self.graph(*args)


def stream_batched(online: Any, clips: Sequence[torch.Tensor], chunk: int = 64) -> list[np.ndarray]:
    """Per-frame logits ``(L, classes)`` of each clip through ``online`` (the online model, or a
    :class:`_Graph` of it) by :func:`edgekit.evaluation.streaming.stream_logits`: zero states, new
    states fed back; clips of one length batched together, ``chunk`` at most."""
    from ..evaluation.streaming import stream_logits

    out: list[Any] = [None] * len(clips)
    by_length: dict[int, list[int]] = {}
    for i, c in enumerate(clips):
        by_length.setdefault(len(c), []).append(i)
    for idx in by_length.values():
        for s in range(0, len(idx), chunk):
            part = idx[s:s + chunk]
            y = stream_logits(online, torch.stack([clips[i] for i in part])).float().numpy()
            for j, i in enumerate(part):
                out[i] = y[j]
    return out


def reset_rule(num_states: int, stride: int) -> dict[str, Any]:
    """When an app resets the states to their ``init`` (zeros), and which camera frames it processes.

    The model learnt the shift between frames ``stride`` camera frames apart (its training
    segment spacing), so a stream processes one camera frame in ``stride``; a gap of more than
    ``idle_frames = 2 * stride`` camera frames since the last processed one (twice the
    spacing it was trained at) makes the state a different moment than the model expects."""
    return {"init": "zeros", "process_every": stride,
            "when": ["at the start of every stream (a new camera session, a new video)",
                     f"after {2 * stride} or more camera frames since the last processed one (a pause, dropped "
                     "frames, a scene cut): the state must come from the processed frame just before this one"],
            "idle_frames": 2 * stride,
            "self_flush_frames": num_states,
            "note": f"each state reaches one processed frame back, so an output depends on the last "
                    f"{num_states + 1} processed frames only: a stale state is forgotten by itself after "
                    f"{num_states} frames"}


# ---------------------------------------------------------------- converters

def _names(n: int) -> tuple[list[str], list[str]]:
    return [FRAME] + [f"state_{i}" for i in range(n)], [LOGITS] + [f"new_state_{i}" for i in range(n)]


def convert_tflite(online: nn.Module, args: tuple[torch.Tensor, ...], out: Path, *, precision: str,
                   calib: list[torch.Tensor] | None, meta: dict[str, Any], nhwc: bool = False) -> dict[str, Any]:
    """Write the online model as ``out`` (.tflite); ``meta`` is embedded after the gate, with the
    wiring (:meth:`Streaming.check`). ``nhwc`` is refused up front (the states are NCHW)."""
    from . import tflite as tfl
    from .diagnose import converter_error

    with tfl._quiet_converter() as lt:
        try:
            if precision == "int8":
                data = _tflite_int8(lt, online, args, calib)
            else:
                data = bytes(lt.convert(online, args).model_content())
        except EdgekitError:
            raise
        except Exception as exc:
            raise converter_error("tflite", "litert-torch", exc, online, args[0]) from exc
    out.write_bytes(data)
    if precision == "fp16":
        out.write_bytes(tfl.cast_fp16(out))
    return {"converter": "litert-torch", "layout": "NCHW", "dynamic_batch": False}


def _tflite_int8(lt: Any, online: nn.Module, args: tuple[torch.Tensor, ...],
                 calib: list[torch.Tensor] | None) -> bytes:
    """Full-integer PT2E, the prepared graph calibrated frame by frame with its states fed back."""
    from litert_torch.quantize import pt2e_quantizer as pq
    from litert_torch.quantize.quant_config import QuantConfig
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    from .tflite import _in_eval_mode

    if not calib:
        raise EdgekitError("tflite int8 needs calibration clips (--calib)")
    quantizer = pq.PT2EQuantizer().set_global(pq.get_symmetric_quantization_config(is_per_channel=True))
    batch = torch.export.Dim("batch", min=1, max=max(2, CALIB_CHUNK))
    args2 = tuple(torch.cat([a, a]) for a in args)  # batch 1 would be specialised to a constant
    dynamic = ({0: batch}, tuple({0: batch} for _ in args2[1:]))  # forward(frame, *states)
    graph = torch.export.export(online, args2, dynamic_shapes=dynamic, strict=False).module()
    with contextlib.redirect_stdout(io.StringIO()):
        graph = prepare_pt2e(graph, quantizer)
    stream_batched(_Graph(graph, online), calib, chunk=CALIB_CHUNK)
    graph = _in_eval_mode(convert_pt2e(graph, fold_quantize=False))
    return bytes(lt.convert(graph, args, quant_config=QuantConfig(pt2e_quantizer=quantizer)).model_content())


def convert_onnx(online: nn.Module, args: tuple[torch.Tensor, ...], out: Path, *, precision: str,
                 calib: list[torch.Tensor] | None, meta: dict[str, Any], opset: int | None = None,
                 dynamic_batch: bool = False) -> dict[str, Any]:
    """Write the online model as ``out`` (.onnx, its tensors named by :func:`_names`). A stream is
    one frame per call: the batch is always 1, whatever ``dynamic_batch`` says."""
    from . import onnx as ox

    if precision == "int8" and not calib:
        raise EdgekitError("onnx int8 needs calibration clips (--calib)")
    opset = opset or ox.DEFAULT_OPSET
    ins, outs = _names(len(args) - 1)
    fp32 = out if precision == "fp32" else out.with_name(out.stem + ".fp32tmp.onnx")
    try:
        ox.export_fp32(online, args, fp32, opset=opset, dynamic_batch=False, input_names=ins, output_names=outs)
        if precision == "fp16":
            ox.to_fp16(fp32, out)
        elif precision == "int8":
            ox.to_int8(fp32, out, _stream_feeds(fp32, calib or []))
    finally:
        if fp32 != out:
            fp32.unlink(missing_ok=True)
    return {"converter": "torch.onnx (dynamo)", "opset": opset, "dynamic_batch": False}


def _stream_feeds(fp32: Path, clips: list[torch.Tensor]) -> list[dict[str, np.ndarray]]:
    """Calibration feeds of a streaming ONNX model: every frame of ``clips`` with the states the
    fp32 model itself computed at the frame before (zeros at each clip's first frame)."""
    runner = open_stream(fp32)
    feeds = []
    for clip in clips:
        state = {n: np.zeros(d["shape"], np.float32) for n, d in runner.inputs.items() if n != FRAME}
        for frame in clip.numpy():
            feed = {FRAME: frame[None], **state}
            feeds.append(feed)
            out = runner.run(feed)
            state = {f"state_{i}": out[f"new_state_{i}"] for i in range(len(state))}
    return feeds


def convert_coreml(online: nn.Module, args: tuple[torch.Tensor, ...], out: Path, *, precision: str,
                   calib: list[torch.Tensor] | None, meta: dict[str, Any]) -> dict[str, Any]:
    """Write the online model as ``out`` (.mlpackage, ``meta`` in its user-defined metadata)."""
    from . import coreml as cm
    from .diagnose import converter_error

    ct = cm._ct()
    ins, outs = _names(len(args) - 1)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            program = torch.export.export(online, args, strict=False).run_decompositions({})
            ml = ct.convert(program, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS16,
                            inputs=[ct.TensorType(name=n, shape=tuple(a.shape), dtype=np.float32)
                                    for n, a in zip(ins, args)],
                            outputs=[ct.TensorType(name=n, dtype=np.float32) for n in outs],
                            compute_precision=ct.precision.FLOAT32 if precision == "fp32" else ct.precision.FLOAT16)
            if precision == "int8":
                from coremltools.optimize.coreml import (OpLinearQuantizerConfig, OptimizationConfig,
                                                         linear_quantize_weights)

                cfg = OptimizationConfig(global_config=OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8"))
                ml = linear_quantize_weights(ml, cfg)
    except Exception as exc:
        raise converter_error("coreml", f"coremltools {ct.__version__}", exc, online, args[0]) from exc
    ml.author = "edgekit"
    ml.short_description = f"{meta.get('model', '')} streaming, one frame per call ({precision})"
    ml.user_defined_metadata["edgekit"] = json.dumps(meta)
    ml.user_defined_metadata["labels"] = json.dumps(list(meta.get("labels") or []))
    ml.save(str(out))
    return {"converter": f"coremltools {ct.__version__}", "dynamic_batch": False}


def _coreml_structure(path: Path, online: nn.Module, args: tuple[torch.Tensor, ...], classes: int) -> dict[str, Any]:
    """Off macOS: names and shapes of every input and output, and the conv count, read from the package."""
    from . import coreml as cm

    spec = cm._spec(path)
    ins, outs = _names(len(args) - 1)
    got_in = {i.name: list(i.type.multiArrayType.shape) for i in spec.description.input}
    want_in = {n: list(a.shape) for n, a in zip(ins, args)}
    got_out = [o.name for o in spec.description.output]
    problems = []
    if got_in != want_in:
        problems.append(f"inputs {got_in}, expected {want_in}")
    if got_out != outs:
        problems.append(f"outputs {got_out}, expected {outs}")
    convs = cm.op_counts(path).get("conv", 0)
    want_convs = sum(isinstance(m, nn.Conv2d) for m in online.modules())
    if convs != want_convs:
        problems.append(f"{convs} conv ops, the PyTorch model has {want_convs}")
    if problems:
        raise EdgekitError(f"coreml: {path.name} fails the structural check: {'; '.join(problems)}")
    return {"mode": "structural", "passed": True, "conv_ops": convs, "classes": classes,
            "note": "Core ML runs only on macOS; the streaming parity gate runs there (edgekit verify)"}


# ---------------------------------------------------------------- graph check

def state_graph_check(path: Path, states: list[dict[str, Any]]) -> dict[str, Any]:
    """Per state output: computed by an op (not a graph input passed through), and read by no
    op inside the graph (emitted only): the patterns phone GPU delegates mishandle."""
    if path.suffix == ".tflite":
        from ai_edge_litert import schema_py_generated as schema

        model = schema.ModelT.InitFromPackedBuf(bytearray(path.read_bytes()), 0)
        sg = model.subgraphs[0]
        index = {(t.name.decode() if isinstance(t.name, bytes) else t.name): i for i, t in enumerate(sg.tensors)}
        produced = {o for op in sg.operators for o in op.outputs}
        consumed = {i for op in sg.operators for i in op.inputs if i >= 0}
        graph_inputs = set(sg.inputs)
    elif path.suffix == ".onnx":
        import onnx

        g = onnx.load(str(path)).graph
        index = {name: name for name in [*(i.name for i in g.input), *(o.name for o in g.output)]}
        produced = {o for n in g.node for o in n.output}
        consumed = {i for n in g.node for i in n.input}
        graph_inputs = {i.name for i in g.input}
    else:
        return {"checked": False}
    bad = []
    for s in states:
        t = index.get(s["output"])
        if t is None or t in graph_inputs or t not in produced:
            bad.append(f"{s['output']} is not computed by an op")
        elif t in consumed:
            bad.append(f"{s['output']} is also read inside the graph")
    if bad:
        log.warning("%s: state outputs phone GPU delegates may mishandle: %s", path.name, "; ".join(bad))
    return {"checked": True, "state_outputs_computed_and_emitted_only": not bad, "problems": bad}


# ---------------------------------------------------------------- parity

def stream_numbers(ref: Sequence[np.ndarray], out: Sequence[np.ndarray], targets: Sequence[Any] | None = None
                   ) -> dict[str, Any]:
    """Per-frame parity numbers over whole clips (every frame of every clip pooled: the numbers of
    :func:`edgekit.exporters.parity.parity_numbers`), the drift over time (the worst abs error at
    each frame index), and clip-end (last frame) top-1 agreement and accuracies."""
    nums = parity_mod.parity_numbers(np.concatenate(ref), np.concatenate(out), "classify")
    length = max(len(r) for r in ref)
    drift = [max(float(np.abs(o[t] - r[t]).max()) for r, o in zip(ref, out) if len(r) > t) for t in range(length)]
    end_ref = np.asarray([r[-1].argmax() for r in ref])
    end_out = np.asarray([o[-1].argmax() for o in out])
    nums.update(clips=len(ref), frames=int(sum(len(r) for r in ref)), drift_max_abs_err=drift,
                drift_first=drift[0], drift_last=drift[-1], clip_end_top1_agreement=float((end_ref == end_out).mean()))
    if targets is not None and all(isinstance(t, (int, np.integer)) for t in targets):
        t = np.asarray(targets)
        nums.update(torch_clip_end_top1=float((end_ref == t).mean() * 100),
                    artifact_clip_end_top1=float((end_out == t).mean() * 100))
    return nums


def stream_parity(runner: Any, wiring: dict[str, Any], clips: Sequence[torch.Tensor], ref: Sequence[np.ndarray],
                  targets: Sequence[Any] | None, name: str, precision: str,
                  thresholds: dict[str, float] | None = None, feedback: bool = True) -> dict[str, Any]:
    """Run whole ``clips`` frame by frame through the artifact (states fed back as ``wiring`` says)
    and gate its per-frame logits against PyTorch's ``ref``; raises one line when it fails."""
    try:
        out = [run_stream(runner, wiring, c.numpy(), feedback) for c in clips]
    except (KeyError, ValueError) as exc:
        raise EdgekitError(f"{name}: the streaming artifact does not run as its manifest wires it: "
                           f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}") from exc
    nums = stream_numbers(ref, out, targets)
    res = parity_mod.gate(name, precision, nums, thresholds, "classify")
    return {"mode": "numeric", "streaming": True, "runtime": runner.runtime, **res}


def wiring_of(manifest: dict[str, Any]) -> dict[str, Any]:
    """The wiring :func:`run_stream` takes, from a streaming manifest."""
    if not manifest.get("streaming") or not manifest.get("states"):
        raise EdgekitError("this artifact's manifest describes no streaming model (no 'states')")
    return {"frame": manifest["frame_input"]["name"], "logits": manifest["logits_output"]["name"],
            "states": [{"input": s["input"], "output": s["output"]} for s in manifest["states"]]}


def _state_records(runner: Any, wiring: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for s in wiring["states"]:
        i, o = runner.inputs[s["input"]], runner.outputs[s["output"]]
        rec = {"input": s["input"], "output": s["output"], "shape": i["shape"], "dtype": i["dtype"], "init": "zeros",
               "bytes": int(np.prod(i["shape"]) * np.dtype(i["dtype"]).itemsize)}
        if i.get("quantization") or o.get("quantization"):
            rec["quantization"] = {"input": _qparams(i), "output": _qparams(o),
                                   "feed_back": "as is" if i.get("quantization") == o.get("quantization")
                                   else "dequantize the output, quantize for the input"}
            rec["init_native"] = (i["quantization"] or (0, 0))[1]  # float zero = the zero point
        out.append(rec)
    return out


def _qparams(d: dict[str, Any]) -> dict[str, Any] | None:
    q = d.get("quantization")
    return {"scale": q[0], "zero_point": q[1]} if q else None


def _tensor(runner: Any, name: str, side: str, **extra: Any) -> dict[str, Any]:
    d = (runner.inputs if side == "in" else runner.outputs)[name]
    rec = {"name": name, "shape": d["shape"], "dtype": d["dtype"], **extra}
    if d.get("quantization"):
        rec["quantization"] = _qparams(d)
    return rec


class _ByConstruction:
    """Tensor names and shapes an exporter set itself (Core ML off macOS: nothing can run it)."""

    runtime = "none"

    def __init__(self, args: tuple[torch.Tensor, ...], ref_out: Sequence[torch.Tensor]) -> None:
        ins, outs = _names(len(args) - 1)
        self.inputs = {n: {"shape": list(a.shape), "dtype": "float32"} for n, a in zip(ins, args)}
        self.outputs = {n: {"shape": list(a.shape), "dtype": "float32"} for n, a in zip(outs, ref_out)}
        self.wiring = {"frame": FRAME, "logits": LOGITS,
                       "states": [{"input": i, "output": o} for i, o in zip(ins[1:], outs[1:])]}


# ---------------------------------------------------------------- export

class Streaming:
    """The streaming kind of export, one of the kinds the export loop of
    :func:`edgekit.exporters.pipeline.export` runs (stage -> convert -> gate -> manifest -> move).

    Built once per export: refuses what cannot stream (a checkpoint without an online model,
    a target whose format has no ``stream_exporter``, ``--nhwc``), then reads whole clips
    (``parity_size`` validation and, for int8, ``calib_size`` training clips; default
    :data:`STREAM_CLIPS`) and the PyTorch online model's per-frame logits on them. Per
    artifact, :meth:`convert` runs the format's streaming converter and :meth:`check` the
    frame-by-frame gate, reads the wiring back and embeds it into the staged artifact."""

    suffix = ".stream"  # model.stream.fp32.tflite
    note = ", streaming"

    def __init__(self, ckpt: Checkpoint, targets: Sequence[str], precisions: Sequence[str], *,
                 calib: str | DataBundle | None, calib_size: int | None, parity_size: int | None,
                 thresholds: dict[str, float] | None, opts: dict[str, Any]) -> None:
        self.online = online = online_model(ckpt)
        for target in targets:
            formats.stream_exporter(target)  # a target that cannot stream: one line
        if opts.get("nhwc"):
            raise EdgekitError("--nhwc is not supported with --streaming: the frame and the states are NCHW")
        self.ckpt, self.thresholds = ckpt, thresholds
        self.bundle = bundle = checkpoint_data(ckpt, calib)
        stride = clip_stride(ckpt, bundle)
        self.clips, self.targets = whole_clips(ckpt, bundle, "val", parity_size or STREAM_CLIPS, stride)
        self.ref = stream_batched(online, self.clips)
        self.calib_clips = whole_clips(ckpt, bundle, "train", calib_size or STREAM_CLIPS, stride, seed=1)[0] \
            if "int8" in precisions else None
        self.spec = frame_input_spec(ckpt)
        height, width = self.spec["shape"][1:]
        self.args = (self.clips[0][:1], *online.initial_states(1, height, width))
        with torch.no_grad():  # a real frame and realistic states (after a few real frames) for the wiring probe
            states: Sequence[torch.Tensor] = ()
            for f in self.clips[0][:3]:
                res = online(f[None], *states)
                states = res[1:]
            self.probe_frame = self.clips[0][3 % len(self.clips[0])][None].numpy()
            self.probe_states = [s.numpy() for s in states]
            self.ref_out = online(*self.args)
        self.reset = reset_rule(online.num_states, stride)
        self.preprocessing = {**_preprocessing(self.spec), "layout": "NCHW"}

    def _reference(self, frame: np.ndarray, *st: np.ndarray) -> list[np.ndarray]:
        with torch.no_grad():
            return [o.numpy() for o in self.online(torch.from_numpy(frame), *(torch.from_numpy(s) for s in st))]

    def meta(self, target: str, precision: str) -> dict[str, Any]:
        """What the artifact embeds beside the loop's common fields (the wiring is added after the gate)."""
        return {"layout": "NCHW", "preprocessing": self.preprocessing, "input_shape": list(self.spec["shape"]),
                "streaming": True, "reset": self.reset}

    def convert(self, target: str, precision: str, out: Path, meta: dict[str, Any],
                options: dict[str, Any]) -> dict[str, Any]:
        return formats.stream_exporter(target)(self.online, self.args, out, precision=precision,
                                               calib=self.calib_clips, meta=meta, **options)

    def check(self, target: str, precision: str, staged: Path, meta: dict[str, Any],
              extras: dict[str, Any]) -> dict[str, Any]:
        """The frame-by-frame gate (or, where the format's runtime cannot run here, the structural
        check of the Core ML package), then the wiring and state records, embedded into ``staged``."""
        if target == "coreml" and formats.runtime_unavailable(formats.target(target).runtime):
            runner: Any = _ByConstruction(self.args, self.ref_out)
            wiring = runner.wiring
            parity = _coreml_structure(staged, self.online, self.args, int(self.ref_out[0].shape[-1]))
        else:
            runner = open_stream(staged)
            wiring = map_io(runner, self._reference, self.probe_frame, self.probe_states)
            parity = stream_parity(runner, wiring, self.clips, self.ref, self.targets, staged.name, precision,
                                   self.thresholds)
        states_rec = _state_records(runner, wiring)
        stream_fields = {
            "streaming": True,
            "frame_input": _tensor(runner, wiring["frame"], "in", layout="NCHW"),
            "logits_output": _tensor(runner, wiring["logits"], "out"),
            "states": states_rec, "state_bytes": int(sum(s["bytes"] for s in states_rec)),
            "reset": self.reset, "receptive_frames": self.online.num_states + 1,
            "state_graph": state_graph_check(staged, states_rec)}
        if target == "tflite":
            from . import tflite as tfl

            staged.write_bytes(tfl.embed_metadata(staged.read_bytes(), {**meta, **_slim(stream_fields)}))
            tfl.append_labels(staged, list(self.ckpt.labels))
        elif target == "onnx":
            from . import onnx as ox

            ox.embed_metadata(staged, {**meta, **_slim(stream_fields)})
            extras["nodes"] = ox.check(staged)["nodes"]
        return {"input_spec": {**self.spec, "layout": "NCHW", "clip_spec": dict(self.ckpt.input_spec)},
                "preprocessing": self.preprocessing,
                "inputs": [stream_fields["frame_input"]] + [
                    {"name": s["input"], "shape": s["shape"], "dtype": s["dtype"]} for s in states_rec],
                "outputs": [stream_fields["logits_output"]] + [
                    {"name": s["output"], "shape": s["shape"], "dtype": s["dtype"]} for s in states_rec],
                **stream_fields, "parity": parity}

    def provenance(self, target: str, precision: str) -> dict[str, Any]:
        """Calibration, parity data and source of an artifact: whole clips, states fed back."""
        ckpt, calib, how = self.ckpt, self.calib_clips, "whole clips frame by frame, states fed back"
        return {"calibration": {"data": self.bundle.spec, "split": "train", "clips": len(calib),
                                "frames": int(sum(len(c) for c in calib)), "how": how}
                if precision == "int8" and calib else None,
                "parity_data": {"data": self.bundle.spec, "split": "val", "clips": len(self.clips),
                                "frames": int(sum(len(c) for c in self.clips)), "how": how},
                "source": {"path": str(ckpt.path) if ckpt.path else None, "sha256": ckpt.sha256, "arch": ckpt.arch,
                           "online_arch": _online_arch(ckpt.arch), "pruned": bool(ckpt.channel_plan),
                           "metrics": ckpt.metrics, "lineage": ckpt.lineage},
                "data": ckpt.data_record}


def _preprocessing(spec: dict[str, Any]) -> dict[str, Any]:
    from ..data.transforms import preprocessing

    return preprocessing(spec)


def _online_arch(arch: str) -> str | None:
    from ..models.temporal import online_arch

    try:
        return online_arch(arch)
    except EdgekitError:
        return None


def _slim(fields: dict[str, Any]) -> dict[str, Any]:
    """The stream fields an app reads from the artifact itself (no graph check)."""
    return {k: v for k, v in fields.items() if k != "state_graph"}


def verify_streaming(path: Path, manifest: dict[str, Any], ckpt: Checkpoint, data: str | DataBundle | None,
                     n: int, precision: str, thresholds: dict[str, float] | None) -> dict[str, Any]:
    """Re-run the streaming parity gate of ``path`` as its manifest wires it."""
    online = online_model(ckpt)
    bundle = checkpoint_data(ckpt, data)
    clips, targets = whole_clips(ckpt, bundle, "val", n, clip_stride(ckpt, bundle))
    ref = stream_batched(online, clips)
    return stream_parity(open_stream(path), wiring_of(manifest), clips, ref, targets, path.name, precision, thresholds)

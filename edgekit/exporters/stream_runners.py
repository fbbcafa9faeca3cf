"""Run a streaming artifact (one frame per call, states in and out) by tensor name, and find its wiring.

A streaming artifact has several inputs (the frame and one tensor per state) and several
outputs (the logits and one new state per state). Its runtime names them as it likes:
litert-torch calls them ``serving_default_args_N`` / ``serving_default_output_N_output``,
and the signature lists them in **string order** (``args_1, args_10, args_2, ...``), so
position says nothing reliable about which tensor is which. :func:`map_io` therefore finds
the wiring from the artifact itself:

1. shapes: the frame, the logits and each state have a shape; a state whose shape no
   other state shares is matched by shape alone;
2. a numeric probe for the rest: the outputs are matched with the PyTorch online model's
   on the same frame and zero states (each output to the closest PyTorch output of its
   shape), then each state input of a shared shape is fed a realistic state on its own
   and paired with the PyTorch state whose effect on the outputs it reproduces best.

:class:`StreamRunner` (``run(feeds) -> outputs`` with float32 arrays by name) hides
int8 quantization of inputs and outputs; :func:`run_stream` runs whole clips frame by frame
with the new states fed back, as an application does.
"""
from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .. import formats
from ..errors import EdgekitError, require
from .runtimes import _dequantize, _quantize, open_interpreter, ort_session


class StreamRunner:
    """A loaded streaming artifact: named float32 feeds in, named float32 outputs out."""

    runtime = "?"
    #: name -> {"shape": [...], "dtype": str, "quantization": (scale, zero) or None}
    inputs: dict[str, dict[str, Any]]
    outputs: dict[str, dict[str, Any]]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def stepper(self, wiring: dict[str, Any], frame: np.ndarray) -> Callable[[], Any]:
        """One call per frame as an app makes it: ``frame`` in, the previous call's new states
        fed back (zeros at the first call), the logits out. Runtimes override it to keep the
        states in their native form (int8 stays int8 where input and output scales agree)."""
        state = {s["input"]: np.zeros(self.inputs[s["input"]]["shape"], np.float32) for s in wiring["states"]}
        pairs = [(s["input"], s["output"]) for s in wiring["states"]]

        def step() -> Any:
            out = self.run({wiring["frame"]: frame, **state})
            state.update({i: out[o] for i, o in pairs})
            return out[wiring["logits"]]

        return step


def _detail(d: dict[str, Any]) -> dict[str, Any]:
    dt = np.dtype(d["dtype"])
    q = d.get("quantization") or (0.0, 0)
    return {"shape": [int(s) for s in d["shape"]], "dtype": dt.name,
            "quantization": (float(q[0]), int(q[1])) if dt.kind != "f" and q[0] else None, "_d": d}


class TFLiteStream(StreamRunner):
    """ai-edge-litert Interpreter; int8 tensors quantized and dequantized by their own scale."""

    runtime = "litert"

    def __init__(self, path: Path, threads: int | None = None, builtin_kernels: bool = False) -> None:
        self.interp = open_interpreter(path, threads, builtin_kernels)  # builtin_kernels: no XNNPACK
        self.inputs = {d["name"]: _detail(d) for d in self.interp.get_input_details()}
        self.outputs = {d["name"]: _detail(d) for d in self.interp.get_output_details()}

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        for name, x in feeds.items():
            d = self.inputs[name]["_d"]
            self.interp.set_tensor(d["index"], _quantize(np.ascontiguousarray(x, dtype=np.float32), d))
        self.interp.invoke()
        return {name: _dequantize(self.interp.get_tensor(o["_d"]["index"]), o["_d"])
                for name, o in self.outputs.items()}

    def stepper(self, wiring: dict[str, Any], frame: np.ndarray) -> Callable[[], Any]:
        interp = self.interp
        frame_d = self.inputs[wiring["frame"]]["_d"]
        native_frame = _quantize(np.ascontiguousarray(frame, dtype=np.float32), frame_d)
        logits = self.outputs[wiring["logits"]]["_d"]["index"]
        pairs, states = [], []
        for s in wiring["states"]:
            i, o = self.inputs[s["input"]], self.outputs[s["output"]]
            same = i["dtype"] == o["dtype"] and i["quantization"] == o["quantization"]
            pairs.append((i["_d"]["index"], o["_d"]["index"], None if same else (o["_d"], i["_d"])))
            states.append(_quantize(np.zeros(i["shape"], np.float32), i["_d"]))

        def step() -> Any:
            interp.set_tensor(frame_d["index"], native_frame)
            for (idx, _, _), st in zip(pairs, states):
                interp.set_tensor(idx, st)
            interp.invoke()
            for k, (_, idx, requant) in enumerate(pairs):
                v = interp.get_tensor(idx)
                states[k] = v if requant is None else _quantize(_dequantize(v, requant[0]), requant[1])
            return interp.get_tensor(logits)

        return step


class OnnxStream(StreamRunner):
    """onnxruntime InferenceSession (:func:`~edgekit.exporters.runtimes.ort_session`; CPU unless
    ``delegate`` says otherwise)."""

    runtime = "onnxruntime"

    def __init__(self, path: Path, threads: int | None = None, delegate: str = "cpu") -> None:
        self.session = ort_session(path, threads, delegate)

        def desc(t: Any) -> dict[str, Any]:
            return {"shape": [int(s) if isinstance(s, int) else 1 for s in t.shape],
                    "dtype": "float16" if "float16" in t.type else "float32", "quantization": None}

        self.inputs = {t.name: desc(t) for t in self.session.get_inputs()}
        self.outputs = {t.name: desc(t) for t in self.session.get_outputs()}
        self._names = list(self.outputs)

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        native = {k: np.ascontiguousarray(v, dtype=self.inputs[k]["dtype"]) for k, v in feeds.items()}
        return {k: np.asarray(v, dtype=np.float32) for k, v in zip(self._names, self.session.run(None, native))}

    def stepper(self, wiring: dict[str, Any], frame: np.ndarray) -> Callable[[], Any]:
        feeds = {k: np.zeros(d["shape"], d["dtype"]) for k, d in self.inputs.items()}
        feeds[wiring["frame"]] = np.ascontiguousarray(frame, dtype=self.inputs[wiring["frame"]]["dtype"])
        names = [wiring["logits"], *(s["output"] for s in wiring["states"])]
        ins = [s["input"] for s in wiring["states"]]
        run = self.session.run

        def step() -> Any:
            outs = run(names, feeds)
            feeds.update(zip(ins, outs[1:]))
            return outs[0]

        return step


class CoreMLStream(StreamRunner):
    """coremltools prediction (macOS only)."""

    runtime = "coreml"

    def __init__(self, path: Path, threads: int | None = None, compute_units: str = "ALL") -> None:
        why = formats.runtime_unavailable("coreml")
        if why:
            raise EdgekitError(why)
        ct = require("coremltools", "coreml")
        self.model = ct.models.MLModel(str(path), compute_units=getattr(ct.ComputeUnit, compute_units))
        spec = self.model.get_spec()

        def desc(t: Any) -> dict[str, Any]:
            return {"shape": [int(s) for s in t.type.multiArrayType.shape], "dtype": "float32", "quantization": None}

        self.inputs = {t.name: desc(t) for t in spec.description.input}
        self.outputs = {t.name: desc(t) for t in spec.description.output}

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = self.model.predict({k: np.asarray(v, dtype=np.float32) for k, v in feeds.items()})
        return {k: np.asarray(out[k], dtype=np.float32).reshape(self.outputs[k]["shape"]) for k in self.outputs}


def open_stream(artifact: str | Path, threads: int | None = None, **options: Any) -> StreamRunner:
    """The stream runner of ``artifact`` on its format's runtime (:mod:`edgekit.formats` names it)."""
    path = Path(artifact)
    rt = formats.detect(path).runtime
    try:
        cls = formats.stream_runner_class(rt)
    except EdgekitError as exc:
        raise EdgekitError(f"{path.name}: {exc}") from None
    return cls(path, threads=threads, **options)


# ---------------------------------------------------------------- wiring

def _rel_err(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-12))


def _assign(names: list[str], refs: list[int], cost: Callable[[str, int], float]) -> dict[str, int]:
    """The pairing of ``names`` with ``refs`` (same length) of least total cost: every permutation
    for small groups, greedy beyond 7."""
    table = {(n, r): cost(n, r) for n in names for r in refs}
    if len(names) <= 7:
        best = min(itertools.permutations(refs), key=lambda p: sum(table[n, r] for n, r in zip(names, p)))
        return dict(zip(names, best))
    out: dict[str, int] = {}
    for (n, r), _ in sorted(table.items(), key=lambda kv: kv[1]):
        if n not in out and r not in out.values():
            out[n] = r
    return out


def _groups(shapes: dict[str, list[int]], ref_shapes: list[list[int]], what: str) -> list[tuple[list[str], list[int]]]:
    """Artifact names and reference indices grouped by shape; the counts must agree."""
    out = []
    for shape in {tuple(s) for s in ref_shapes}:
        refs = [i for i, s in enumerate(ref_shapes) if tuple(s) == shape]
        names = [n for n, s in shapes.items() if tuple(s) == shape]
        if len(names) != len(refs):
            raise EdgekitError(f"the artifact has {len(names)} {what}s of shape {list(shape)}, the online model "
                               f"{len(refs)}: {sorted(shapes)}")
        out.append((names, refs))
    return out


def map_io(runner: StreamRunner, reference: Callable[..., Sequence[np.ndarray]], frame: np.ndarray,
           states: Sequence[np.ndarray]) -> dict[str, Any]:
    """The artifact's wiring: ``{"frame": NAME, "logits": NAME, "states": [{"input": NAME, "output":
    NAME}, ...]}`` in the
    online model's state order (depth order), by shapes and a numeric probe (module docstring).

    ``reference(frame, *states)`` is the PyTorch online model on numpy arrays; ``frame`` a real
    frame and ``states`` realistic states (after a few real frames), both batch 1."""
    ref_in = [list(frame.shape)] + [list(s.shape) for s in states]
    in_shapes = {n: d["shape"] for n, d in runner.inputs.items()}
    out_shapes = {n: d["shape"] for n, d in runner.outputs.items()}
    if len(in_shapes) != len(ref_in) or len(out_shapes) != len(ref_in):
        raise EdgekitError(f"the artifact has {len(in_shapes)} inputs and {len(out_shapes)} outputs; the online "
                           f"model takes the frame and {len(states)} states and returns as many")
    in_groups = _groups(in_shapes, ref_in, "input")
    frame_names = next(names for names, refs in in_groups if 0 in refs)
    if len(frame_names) != 1:
        raise EdgekitError(f"a state has the frame's shape {list(frame.shape)}; cannot tell them apart")
    zeros = [np.zeros_like(s) for s in states]

    # outputs: same frame, zero states
    ref0 = [np.asarray(o) for o in reference(frame, *zeros)]
    feeds0 = {n: np.zeros(s, np.float32) for n, s in in_shapes.items()}
    feeds0[frame_names[0]] = frame
    out0 = runner.run(feeds0)
    out_of: dict[str, int] = {}
    for names, refs in _groups(out_shapes, [list(r.shape) for r in ref0], "output"):
        out_of.update(_assign(names, refs, lambda n, r: _rel_err(out0[n], ref0[r])))
    order = sorted(out_of, key=out_of.get)  # artifact outputs in the online model's order

    # state inputs: one realistic state at a time
    in_of = {frame_names[0]: 0}
    for names, refs in in_groups:
        if 0 in refs:
            continue
        if len(names) == 1:
            in_of[names[0]] = refs[0]
            continue
        ref_runs = {r: np.concatenate([np.ravel(o) for o in
                                       reference(frame, *[states[i] if i == r - 1 else zeros[i]
                                                          for i in range(len(states))])]) for r in refs}
        def cost(n: str, r: int) -> float:
            out = runner.run({**feeds0, n: states[r - 1]})
            return _rel_err(np.concatenate([np.ravel(out[o]) for o in order]), ref_runs[r])

        in_of.update(_assign(names, refs, cost))
    state_in = sorted((n for n in in_of if in_of[n] > 0), key=in_of.get)
    return {"frame": frame_names[0], "logits": order[0],
            "states": [{"input": i, "output": o} for i, o in zip(state_in, order[1:])]}


def run_stream(runner: StreamRunner, wiring: dict[str, Any], frames: np.ndarray,
               feedback: bool = True) -> np.ndarray:
    """Per-frame logits ``(L, classes)`` of one clip ``frames`` ``(L, C, H, W)``, run frame by frame
    from zero states; each output state is fed back as the next call's input (``feedback=False``
    feeds zeros every call: what a mis-wired app does, for tests)."""
    pairs = [(s["input"], s["output"]) for s in wiring["states"]]
    state = {i: np.zeros(runner.inputs[i]["shape"], np.float32) for i, _ in pairs}
    logits = []
    for f in frames:
        out = runner.run({wiring["frame"]: f[None], **state})
        logits.append(out[wiring["logits"]].reshape(-1))
        if feedback:
            state = {i: out[o] for i, o in pairs}
    return np.stack(logits)

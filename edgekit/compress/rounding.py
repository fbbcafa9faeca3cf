"""Channel counts a CPU runtime runs fast: the multiple that pruning rounds kept channel counts to.

Why pruned models got slower on onnxruntime (measured in ``benchmarks/ort_channels.md``,
fp32, batch 1, 1 thread, onnxruntime 1.32 and LiteRT/XNNPACK on an AVX-512 x86 CPU):

* onnxruntime's CPU provider rewrites convolutions to its blocked NCHWc layout
  (``com.microsoft.nchwc.Conv``, channels in blocks of the MLAS block size: 16 with
  AVX-512, 8 with AVX2) only when the channel counts are multiples of 4; any other count
  stays a plain NCHW ``FusedConv`` (im2col + SGEMM, or a slow generic depthwise loop).
  One channel more falls off the fast path: a 3x3 depthwise chain at 8x8 takes 12.1 us
  with 128 channels and 124.6 us with 129 (10x), a dense 3x3 chain at 16x16 35.6 us with
  16 channels and 68.3 us with 17. Unrounded pruning leaves counts such as 37, 79, 173,
  so a pruned model runs mostly on the slow path and can lose to its unpruned parent,
  whose counts (16, 32, 64, ...) are all on the fast path.
* Within the NCHWc path the cost steps at multiples of the block size (weights are padded
  to it): 20, 24, 28 and 32 dense 3x3 channels cost the same.
* XNNPACK (LiteRT's CPU delegate) runs every count, with the cost stepping at multiples of
  its channel tile: 16 on this CPU (32 channels 76.9 us, 33 channels 160.0 us for a dense
  3x3 chain at 16x16); 8 on typical ARM NEON builds.

Whole models pruned by L1 to 50 % MACs (same file): unrounded, resnet18 at 32 px ran 0.58x, mobilenet_v2
at 96 px 0.59x and compact_cnn 0.63x of their parents' speed on onnxruntime (half the convolutions in
NCHW, reorder nodes between the layouts); with kept counts rounded to 16 they ran 3.49x, 2.15x and 1.83x
faster, and LiteRT's speed-ups rose too (resnet18 1.71x -> 2.19x, mobilenet_v2 1.65x -> 1.98x).

So a kept count should be a multiple of the runtime's block: it never falls off the fast
path and pays for no padding. 16 is also a multiple of every narrower block (8, 4), so
counts rounded to 16 stay on the fast path of an AVX2 or NEON machine too. For
onnxruntime the block of the onnxruntime installed here is read from the graph it
optimises (:func:`onnxruntime_block`), since a latency target is measured on this machine.
"""
from __future__ import annotations

import functools
import tempfile
from pathlib import Path

from ..errors import EdgekitError
from ..formats import RUNTIMES

#: Measured channel multiple per runtime (benchmarks/ort_channels.md, AVX-512 x86 CPU), as the
#: runtime table (:mod:`edgekit.formats`) records it.
ROUND_TO: dict[str, int] = {name: rt.round_to for name, rt in RUNTIMES.items() if rt.round_to}
#: ``round_to="auto"`` without a runtime (macs/params targets): both measured runtimes step at 16,
#: and whole models pruned to 50 % MACs with counts rounded to 16 ran faster than with 8 on both
#: (resnet18, mobilenet_v2); 16 is a multiple of the narrower blocks of other CPUs (8: AVX2, NEON).
DEFAULT_ROUND_TO = 16
AUTO = "auto"


def parse_round_to(value: int | str | None) -> int | str | None:
    """``None`` (no rounding), ``"auto"`` or a positive int; anything else is one-line bad input."""
    if value is None or (isinstance(value, str) and value.strip().lower() == AUTO):
        return None if value is None else AUTO
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise EdgekitError(f"round_to must be a positive integer or 'auto', got {value!r}")
    return value


def round_to_for(runtime: str | None) -> int:
    """The channel multiple that runs fast on ``runtime`` (None: :data:`DEFAULT_ROUND_TO`)."""
    if runtime is None:
        return DEFAULT_ROUND_TO
    if runtime == "onnxruntime":
        return onnxruntime_block() or ROUND_TO["onnxruntime"]
    return ROUND_TO.get(runtime, DEFAULT_ROUND_TO)


def resolve_round_to(round_to: int | str | None, runtime: str | None = None) -> int | None:
    """``"auto"`` -> :func:`round_to_for` the target's runtime (latency targets name one; macs and
    params targets pass None); an int or None passes through unchanged."""
    round_to = parse_round_to(round_to)
    return round_to_for(runtime) if round_to == AUTO else round_to


@functools.lru_cache(maxsize=1)
def onnxruntime_block() -> int | None:
    """The NCHWc block size of the onnxruntime installed here, read from the graph it optimises:
    a 1x1 convolution with 4 output channels has its weights padded to one block. None when
    onnxruntime (or onnx) is not installed, or does not use the NCHWc layout on this CPU; any other
    failure of the probe (a session that will not build, an unreadable optimised graph) is a
    one-line :class:`~edgekit.errors.EdgekitError`, not taken for "no fast path"."""
    try:
        import numpy as np
        import onnx
        import onnxruntime as ort
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:  # not installed: nothing to probe
        return None
    w = numpy_helper.from_array(np.ones((4, 4, 1, 1), np.float32), "w")
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[1, 1])], "probe",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "optimized.onnx")
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.optimized_model_filepath = out
        try:
            ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
            optimized = onnx.load(out).graph
        except Exception as exc:  # installed but broken: say so, in one line
            raise EdgekitError(f"onnxruntime's channel-block probe failed ({type(exc).__name__}: "
                               f"{str(exc).splitlines()[0] if str(exc) else ''}); the installed onnxruntime "
                               "cannot optimise a 1x1 convolution") from exc
    convs = [n for n in optimized.node if n.op_type == "Conv" and n.domain == "com.microsoft.nchwc"]
    if not convs:
        return None
    dims = {i.name: list(i.dims) for i in optimized.initializer}
    shape = dims.get(convs[0].input[1])
    return int(shape[0]) if shape else None

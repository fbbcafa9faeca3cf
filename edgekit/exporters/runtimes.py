"""Run any exported artifact on a batch: one small runner per runtime, one calling convention.

``load_runner(path)`` returns a :class:`Runner`; ``runner(x)`` takes a float32 **NCHW**
batch (exactly what the PyTorch model takes, from the checkpoint's eval transform) and
returns float32 outputs. Whatever the artifact really wants (NHWC layout, int8 tensors
with scale and zero point, a fixed batch of 1, CUDA buffers) is handled inside, so the
parity gate and the benchmarks feed every format the same real inputs.

For timing, ``runner.prepare(x)`` converts a batch to the artifact's native input once
and ``runner.invoke(native)`` runs only the runtime; ``runner(x)`` is
``finish(invoke(prepare(x)))``. Which runner opens which file is :mod:`edgekit.formats`'
table; this module holds only the runners.
"""
from __future__ import annotations

import abc
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .. import formats
from ..errors import EdgekitError, require


class Runner(abc.ABC):
    """A loaded artifact. Subclasses implement ``invoke`` and may override ``prepare``/``finish``."""

    runtime = "?"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.input_shape: list[int | str] = []  # native input shape (batch may be symbolic)
        self.layout = "NCHW"
        self.input_dtype = "float32"
        self.fixed_batch: int | None = None  # set when the artifact only takes this batch size

    def prepare(self, x: np.ndarray) -> Any:
        return np.ascontiguousarray(x, dtype=np.float32)

    @abc.abstractmethod
    def invoke(self, native: Any) -> Any:
        """Run the runtime on a prepared input; return its raw output."""

    def finish(self, out: Any) -> np.ndarray:
        return np.asarray(out, dtype=np.float32)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if x.ndim not in (2, 4, 5):  # NCHW images, [N, d] feature rows (tabular models), NTCHW clips
            raise EdgekitError(f"expected an NCHW batch (or [N, features] rows, NTCHW clips), got shape {list(x.shape)}")
        if self.fixed_batch is not None and x.shape[0] != self.fixed_batch:
            parts = [self(x[i:i + self.fixed_batch]) for i in range(0, x.shape[0], self.fixed_batch)]
            return np.concatenate(parts, axis=0)
        return self.finish(self.invoke(self.prepare(x)))

    def describe(self) -> dict[str, Any]:
        return {"runtime": self.runtime, "input_shape": self.input_shape, "layout": self.layout,
                "input_dtype": self.input_dtype, "fixed_batch": self.fixed_batch}


#: onnxruntime execution providers per delegate (``bench --delegate``), falling back left to right
PROVIDERS = {"cpu": ["CPUExecutionProvider"],
             "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
             "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]}


def ort_session(path: Path, threads: int | None = None, delegate: str = "cpu") -> Any:
    """The one place an onnxruntime ``InferenceSession`` is built: the parity gate, the stream
    runners and the benchmark worker all open artifacts here, with the same options.

    ``threads``: intra-op threads with one inter-op thread (ONNX Runtime's defaults otherwise:
    sequential execution, all graph optimisations; the configuration its docs recommend for
    latency); None leaves onnxruntime's default. ``delegate``: a key of :data:`PROVIDERS`; one
    line when it is unknown or this onnxruntime build lacks its provider."""
    ort = require("onnxruntime", "onnx")
    if delegate not in PROVIDERS:
        raise EdgekitError(f"onnxruntime: unknown execution provider {delegate!r}; use one of {', '.join(PROVIDERS)}")
    if PROVIDERS[delegate][0] not in ort.get_available_providers():
        raise EdgekitError(f"onnxruntime: {PROVIDERS[delegate][0]} is not available in this onnxruntime build "
                           f"(available: {', '.join(ort.get_available_providers())})")
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(str(path), opts, providers=PROVIDERS[delegate])
    except Exception as exc:
        raise EdgekitError(f"onnxruntime cannot load {path}: {str(exc).splitlines()[0][:300]}") from exc


class OnnxRunner(Runner):
    """onnxruntime InferenceSession (:func:`ort_session`; CPU unless ``delegate`` says otherwise)."""

    runtime = "onnxruntime"

    def __init__(self, path: Path, threads: int | None = None, delegate: str = "cpu") -> None:
        super().__init__(path)
        self.session = ort_session(path, threads, delegate)
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.input_shape = [d if isinstance(d, int) else str(d) for d in inp.shape]
        self.fixed_batch = self.input_shape[0] if isinstance(self.input_shape[0], int) else None
        self.input_dtype = "float16" if "float16" in inp.type else "float32"
        self.layout = layout_of(self.input_shape)

    def prepare(self, x: np.ndarray) -> Any:
        x = x.transpose(0, 2, 3, 1) if self.layout == "NHWC" else x
        return np.ascontiguousarray(x, dtype=np.float16 if self.input_dtype == "float16" else np.float32)

    def invoke(self, native: Any) -> Any:
        return self.session.run(None, {self.input_name: native})[0]


class LiteRTRunner(Runner):
    """ai-edge-litert Interpreter (XNNPACK on CPU); quantizes int8 inputs, dequantizes outputs.

    ``builtin_kernels=True`` loads the model without default delegates (LiteRT's own
    kernels, no XNNPACK), to show what the delegate buys."""

    runtime = "litert"

    def __init__(self, path: Path, threads: int | None = None, builtin_kernels: bool = False) -> None:
        super().__init__(path)
        self.interp = open_interpreter(path, threads, builtin_kernels)
        self.inp = self.interp.get_input_details()[0]
        self.out = self.interp.get_output_details()[0]
        self.input_shape = [int(d) for d in self.inp["shape"]]
        self.fixed_batch = self.input_shape[0]
        self.input_dtype = np.dtype(self.inp["dtype"]).name
        self.layout = layout_of(self.input_shape)

    def prepare(self, x: np.ndarray) -> Any:
        x = x.transpose(0, 2, 3, 1) if self.layout == "NHWC" else x
        return _quantize(np.ascontiguousarray(x, dtype=np.float32), self.inp)

    def invoke(self, native: Any) -> Any:
        self.interp.set_tensor(self.inp["index"], native)
        self.interp.invoke()
        return self.interp.get_tensor(self.out["index"])

    def finish(self, out: Any) -> np.ndarray:
        return _dequantize(out, self.out)


class CoreMLRunner(Runner):
    """coremltools prediction: Core ML runs on macOS only."""

    runtime = "coreml"

    def __init__(self, path: Path, threads: int | None = None, compute_units: str = "ALL") -> None:
        super().__init__(path)
        why = formats.runtime_unavailable("coreml")
        if why:
            raise EdgekitError(f"{why}; `edgekit verify` checks {path.name} structurally here")
        ct = require("coremltools", "coreml")
        self.model = ct.models.MLModel(str(path), compute_units=getattr(ct.ComputeUnit, compute_units))
        spec = self.model.get_spec()
        self.input_name = spec.description.input[0].name
        self.output_name = spec.description.output[0].name
        self.input_shape = list(spec.description.input[0].type.multiArrayType.shape)
        self.fixed_batch = int(self.input_shape[0]) if self.input_shape else None

    def invoke(self, native: Any) -> Any:
        return self.model.predict({self.input_name: native})[self.output_name]


class TensorRTRunner(Runner):
    """A serialized TensorRT engine run with torch CUDA tensors as its I/O buffers."""

    runtime = "tensorrt"

    def __init__(self, path: Path, threads: int | None = None) -> None:
        super().__init__(path)
        trt = require_tensorrt()
        import torch

        logger = trt.Logger(trt.Logger.WARNING)
        self.engine = trt.Runtime(logger).deserialize_cuda_engine(path.read_bytes())
        if self.engine is None:
            raise EdgekitError(f"TensorRT cannot deserialize {path} (built by another TensorRT version or GPU?)")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.input_name = next(n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT)
        self.output_name = next(n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT)
        self.input_shape = [int(d) if d >= 0 else "batch" for d in self.engine.get_tensor_shape(self.input_name)]
        self.fixed_batch = self.input_shape[0] if isinstance(self.input_shape[0], int) else None
        self.torch = torch
        self.stream = torch.cuda.Stream()

    def prepare(self, x: np.ndarray) -> Any:
        return self.torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).cuda()

    def invoke(self, native: Any) -> Any:
        torch = self.torch
        self.context.set_input_shape(self.input_name, tuple(native.shape))
        out_shape = tuple(self.context.get_tensor_shape(self.output_name))
        out = torch.empty(out_shape, dtype=torch.float32, device="cuda")
        self.context.set_tensor_address(self.input_name, native.data_ptr())
        self.context.set_tensor_address(self.output_name, out.data_ptr())
        with torch.cuda.stream(self.stream):
            if not self.context.execute_async_v3(self.stream.cuda_stream):
                raise EdgekitError(f"TensorRT execution of {self.path.name} failed")
        self.stream.synchronize()
        return out

    def finish(self, out: Any) -> np.ndarray:
        return out.float().cpu().numpy()


def require_tensorrt() -> Any:
    """The tensorrt module, if it and a CUDA GPU are both present; else one clear line."""
    why = formats.runtime_unavailable("tensorrt")
    if why:
        raise EdgekitError(why)
    import tensorrt as trt

    return trt


def _litert_interpreter() -> Callable[..., Any]:
    """ai-edge-litert's Interpreter, or the older tflite_runtime where only it exists (ARM boards)."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter  # type: ignore[no-redef]
        except ImportError:
            require("ai_edge_litert", "tflite")
            raise
    return Interpreter


def open_interpreter(path: Path, threads: int | None = None, builtin_kernels: bool = False) -> Any:
    """A LiteRT interpreter of ``path`` with its tensors allocated (``builtin_kernels``: no XNNPACK)."""
    Interpreter = _litert_interpreter()
    kwargs: dict[str, Any] = {}
    if builtin_kernels:
        import sys

        resolver = sys.modules[Interpreter.__module__].OpResolverType
        kwargs["experimental_op_resolver_type"] = resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    try:
        interp = Interpreter(model_path=str(path), num_threads=threads, **kwargs)
        interp.allocate_tensors()
    except Exception as exc:
        raise EdgekitError(f"LiteRT cannot load {path}: {str(exc).splitlines()[0][:300]}") from exc
    return interp


def layout_of(shape: list[Any]) -> str:
    """NHWC when the last dim looks like channels and the second does not."""
    if len(shape) == 4 and isinstance(shape[-1], int) and shape[-1] in (1, 3, 4) \
            and not (isinstance(shape[1], int) and shape[1] in (1, 3, 4)):
        return "NHWC"
    return "NCHW"


def _quantize(x: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    dtype = np.dtype(detail["dtype"])
    if dtype.kind == "f":
        return x.astype(dtype)
    scale, zero = detail["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale) + zero, info.min, info.max).astype(dtype)


def _dequantize(y: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    if np.dtype(detail["dtype"]).kind == "f":
        return y.astype(np.float32)
    scale, zero = detail["quantization"]
    return ((y.astype(np.float32) - zero) * scale).astype(np.float32)


def load_runner(artifact: str | Path, *, threads: int | None = None, **options: Any) -> Runner:
    """The runner for ``artifact``, on its format's runtime (:mod:`edgekit.formats`).

    ``options``: ``delegate`` (onnxruntime, a key of :data:`PROVIDERS`), ``compute_units`` (Core ML)."""
    path = Path(artifact)
    fmt = formats.detect(path)
    if fmt.name == "torch":
        raise EdgekitError(f"{path} is an edgekit checkpoint, not an exported artifact")
    return formats.runner_class(fmt.runtime)(path, threads=threads, **options)

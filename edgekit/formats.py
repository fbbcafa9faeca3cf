"""The one table of model formats and the runtimes that run them.

Every stage reads this module and nothing else maps file names to formats, formats to
exporters, or formats to runtimes: export (target names, exporter modules, default
precision, which packages' versions go into the manifest), verify and the parity gate
(which runner opens an artifact), bench (the runtime ``--runtime auto`` picks, the
session module the worker opens, the default delegate) and the latency-targeted pruning
search (which export target a runtime needs). Streaming is a property of a format, not a
second pipeline: a format whose ``stream_exporter`` is set exports a causal TSM's online
model (``export --streaming``) through the same export loop, and a runtime whose
``stream_runner`` is set runs such an artifact frame by frame. How a runtime is shown
(``label``, ``color``) and the channel multiple pruning rounds to for it (``round_to``) are
here too; the report, the quickstart summary and :mod:`edgekit.compress.rounding` read them.

==========  ===================  ==============  ===========  ==========================
format      files                export target   runtime      delegate (default first)
==========  ===================  ==============  ===========  ==========================
torch       edgekit checkpoint   -               torch        eager; torch-compile: inductor
onnx        .onnx                onnx            onnxruntime  cpu, cuda, tensorrt (EPs)
tflite      .tflite              tflite          litert       xnnpack, none; adb (phones)
coreml      .mlpackage .mlmodel  coreml          coreml       all, cpu, cpu_gpu, cpu_ne
tensorrt    .engine .plan        tensorrt        tensorrt     gpu
==========  ===================  ==============  ===========  ==========================

An edgekit checkpoint is recognised by its content (a ``torch.save`` zip whose pickle
starts with the ``edgekit.checkpoint`` header), whatever its file name: the header is
read from the archive without unpickling anything and without importing torch, so the
benchmark parent process and the workers of other runtimes stay torch-free.

Availability is asked here too, once: :func:`export_unavailable` (the converter and the
gate's runtime importable, a GPU where one is needed) and :func:`runtime_unavailable`
(the runtime importable, the right OS, a GPU), each ``None`` or one line naming the
``pip install "edgekit[EXTRA]"`` that fixes it.
"""
from __future__ import annotations

import importlib
import importlib.util
import platform
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import EdgekitError, suggest

#: The header every edgekit checkpoint starts with (``edgekit.checkpoint.FORMAT``).
CHECKPOINT_FORMAT = "edgekit.checkpoint"
PRECISIONS = ("fp32", "fp16", "int8")


@dataclass(frozen=True)
class Need:
    """Something that must be importable: any one of ``modules``, installed by ``package``
    from the edgekit extra ``extra`` (None: a core dependency)."""

    modules: tuple[str, ...]
    package: str
    extra: str | None

    def missing(self) -> str | None:
        if any(importlib.util.find_spec(m) is not None for m in self.modules):
            return None
        fix = f'pip install "edgekit[{self.extra}]"' if self.extra else f"pip install {self.package}"
        return f"{self.package} is not installed; {fix}"


@dataclass(frozen=True)
class Runtime:
    """A runtime: the formats it runs, the benchmark session module, its delegates."""

    name: str
    formats: tuple[str, ...]
    session: str  # module with ``open_session(job)``, run inside the benchmark worker
    delegate: str  # the default delegate / execution provider
    needs: tuple[Need, ...] = ()
    os: str | None = None  # platform.system() it runs on, when only one
    gpu: bool = False  # needs a visible CUDA GPU
    runner: str | None = None  # "module:Class" of the artifact runner (parity gate, verify)
    remote: bool = False  # runs on another device (a phone), not in this process
    stream_runner: str | None = None  # "module:Class" running a streaming artifact frame by frame
    label: str = ""  # how reports and the quickstart summary name it (default: its name)
    color: str = "#17becf"  # its colour in the report's plots
    #: the channel multiple its CPU kernels run fast (edgekit.compress.rounding, measured); the runtimes
    #: that have one are those the latency search measures and benchmarks the original model on
    round_to: int | None = None

    @property
    def display(self) -> str:
        """The name reports show."""
        return self.label or self.name


@dataclass(frozen=True)
class Format:
    """A model format: its files, how it is exported, the runtime it runs on by default."""

    name: str
    extensions: tuple[str, ...]  # the first is the one export writes
    runtime: str  # the runtime ``--runtime auto`` picks
    target: str | None = None  # export target name (None: not an export target)
    exporter: str | None = None  # module with ``convert(model, sample, out, *, precision, calib, meta, ...)``
    options: tuple[str, ...] = ()  # export options its ``convert`` takes
    needs: tuple[Need, ...] = ()  # to export (converter, and the runtime its parity gate runs on)
    gpu: bool = False  # exporting needs a visible CUDA GPU
    precision: str | None = None  # default export precision
    packages: tuple[str, ...] = ()  # distributions whose versions the manifest records
    #: "module:function" converting a causal TSM's online model (``export --streaming``), called like
    #: ``convert`` with the online model and its ``(frame, *states)`` sample; None: cannot stream
    stream_exporter: str | None = None


_ONNX = (Need(("onnx",), "onnx", "onnx"), Need(("onnxscript",), "onnxscript", "onnx"),
         Need(("onnxruntime",), "onnxruntime", "onnx"))
_LITERT = Need(("ai_edge_litert", "tflite_runtime"), "ai-edge-litert", "tflite")
_COREML = Need(("coremltools",), "coremltools", "coreml")
_TENSORRT = Need(("tensorrt",), "tensorrt", "tensorrt")
_STREAMING = "edgekit.exporters.streaming"
_STREAMS = "edgekit.exporters.stream_runners"

FORMATS: dict[str, Format] = {f.name: f for f in (
    Format("torch", (".pt", ".pth"), runtime="torch"),
    Format("onnx", (".onnx",), runtime="onnxruntime", target="onnx", exporter="edgekit.exporters.onnx",
           options=("opset", "dynamic_batch"), needs=_ONNX, precision="fp32",
           packages=("torch", "onnx", "onnxscript", "onnxruntime"), stream_exporter=_STREAMING + ":convert_onnx"),
    Format("tflite", (".tflite",), runtime="litert", target="tflite", exporter="edgekit.exporters.tflite",
           options=("nhwc",), needs=(Need(("litert_torch",), "litert-torch", "tflite"), _LITERT), precision="fp32",
           packages=("torch", "litert-torch", "ai-edge-quantizer", "ai-edge-litert"),
           stream_exporter=_STREAMING + ":convert_tflite"),
    Format("coreml", (".mlpackage", ".mlmodel"), runtime="coreml", target="coreml",
           exporter="edgekit.exporters.coreml", needs=(_COREML,), precision="fp16",
           packages=("torch", "coremltools"), stream_exporter=_STREAMING + ":convert_coreml"),
    Format("tensorrt", (".engine", ".plan"), runtime="tensorrt", target="tensorrt",
           exporter="edgekit.exporters.tensorrt", options=("max_batch",), needs=(*_ONNX, _TENSORRT), gpu=True,
           precision="fp16", packages=("torch", "onnx", "onnxruntime", "tensorrt")),
)}

RUNTIMES: dict[str, Runtime] = {r.name: r for r in (
    Runtime("torch", ("torch",), "edgekit.benchmark.torch_runner", "eager", label="PyTorch eager", color="#7f7f7f"),
    Runtime("torch-compile", ("torch",), "edgekit.benchmark.torch_runner", "inductor", color="#bcbd22"),
    Runtime("onnxruntime", ("onnx",), "edgekit.benchmark.onnxruntime_runner", "cpu",
            needs=(Need(("onnxruntime",), "onnxruntime", "onnx"),), runner="edgekit.exporters.runtimes:OnnxRunner",
            stream_runner=_STREAMS + ":OnnxStream", color="#1f77b4", round_to=16),
    Runtime("litert", ("tflite",), "edgekit.benchmark.litert_runner", "xnnpack", needs=(_LITERT,),
            runner="edgekit.exporters.runtimes:LiteRTRunner", stream_runner=_STREAMS + ":TFLiteStream",
            label="LiteRT", color="#2ca02c", round_to=16),
    Runtime("tensorrt", ("tensorrt",), "edgekit.benchmark.tensorrt_runner", "gpu", needs=(_TENSORRT,), gpu=True,
            runner="edgekit.exporters.runtimes:TensorRTRunner", label="TensorRT", color="#9467bd"),
    Runtime("coreml", ("coreml",), "edgekit.benchmark.coreml_runner", "all", needs=(_COREML,), os="Darwin",
            runner="edgekit.exporters.runtimes:CoreMLRunner", stream_runner=_STREAMS + ":CoreMLStream",
            label="Core ML", color="#8c564b"),
    Runtime("adb", ("tflite",), "edgekit.benchmark.adb", "benchmark_model", remote=True, color="#d62728"),
    Runtime("browser", ("tflite",), "edgekit.demo.bench", "litertjs", remote=True),
)}

#: Export target names, in the order ``all`` exports them.
TARGETS = tuple(f.target for f in FORMATS.values() if f.target)


def artifact_extensions() -> list[str]:
    """The extensions of exported artifacts (checkpoints are known by their content)."""
    return [ext for f in FORMATS.values() if f.target for ext in f.extensions]


def target(name: str) -> Format:
    """The format exported by target ``name`` (onnx, tflite, coreml, tensorrt)."""
    fmt = next((f for f in FORMATS.values() if f.target == name), None)
    if fmt is None:
        raise suggest(name, [*TARGETS, "all"], "export target")
    return fmt


def runtime(name: str) -> Runtime:
    """The runtime called ``name``; an unknown name is one line suggesting the closest."""
    if name not in RUNTIMES:
        raise suggest(name, list(RUNTIMES), "runtime")
    return RUNTIMES[name]


def is_edgekit_checkpoint(path: str | Path) -> bool:
    """Whether ``path`` is a ``torch.save`` archive whose pickle starts with the edgekit header.

    Reads the first bytes of the archive's ``data.pkl`` member: no unpickling, no torch."""
    p = Path(path)
    if not p.is_file():
        return False
    try:
        with zipfile.ZipFile(p) as zf:
            member = next((n for n in zf.namelist() if n == "data.pkl" or n.endswith("/data.pkl")), None)
            if member is None:
                return False
            with zf.open(member) as fh:
                head = fh.read(512)
    except (OSError, zipfile.BadZipFile, ValueError):
        return False
    return CHECKPOINT_FORMAT.encode() in head


def detect(path: str | Path) -> Format:
    """The format of the file or bundle at ``path``: artifacts by extension, edgekit
    checkpoints by content whatever their name. Raises one line when it is neither."""
    p = Path(path)
    if not p.exists():
        raise EdgekitError(f"artifact not found: {p}")
    suffix = p.suffix.lower()
    fmt = next((f for f in FORMATS.values() if f.target and suffix in f.extensions), None)
    if fmt is not None:
        return fmt
    if is_edgekit_checkpoint(p):
        return FORMATS["torch"]
    if suffix in FORMATS["torch"].extensions:
        raise EdgekitError(f"{p} is not an edgekit checkpoint (no '{CHECKPOINT_FORMAT}' header)")
    raise EdgekitError(f"{p}: unknown artifact type {suffix or '(no extension)'!r}; expected an edgekit checkpoint "
                       f"or one of {', '.join(artifact_extensions())}")


def precision_in_name(path: str | Path) -> str | None:
    """The precision an exported file's name carries (``model.int8.tflite`` -> int8), if any."""
    m = re.search(r"[._-](" + "|".join(PRECISIONS) + r")(?=[._-]|$)", Path(path).name.rsplit(".", 1)[0])
    return m.group(1) if m else None


def _gpu_missing() -> str | None:
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    return None if torch.cuda.is_available() else "no CUDA GPU is visible"


def runtime_unavailable(name: str) -> str | None:
    """One line saying why runtime ``name`` cannot run here, or None if it can."""
    rt = runtime(name)
    why = next((w for w in (n.missing() for n in rt.needs) if w), None)
    if why is None and rt.os and platform.system() != rt.os:
        why = f"it runs only on {'macOS' if rt.os == 'Darwin' else rt.os} (this is {platform.system()})"
    if why is None and rt.gpu:
        why = _gpu_missing()
    return f"{name} runtime unavailable: {why}" if why else None


def export_unavailable(name: str) -> str | None:
    """One line saying why export target ``name`` cannot be produced here, or None if it can."""
    fmt = target(name)
    why = next((w for w in (n.missing() for n in fmt.needs) if w), None)
    if why is None and fmt.gpu:
        why = _gpu_missing()
    return f"{name} export unavailable: {why}" if why else None


def available_targets() -> list[str]:
    """Export targets this machine can produce."""
    return [t for t in TARGETS if export_unavailable(t) is None]


def _load(spec: str) -> Any:
    """The object a ``"module:name"`` entry of the table names (imported on first use)."""
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def runner_class(name: str) -> Any:
    """The artifact runner class of runtime ``name`` (imported on first use)."""
    rt = runtime(name)
    if rt.runner is None:
        raise EdgekitError(f"the {name} runtime has no artifact runner")
    return _load(rt.runner)


def stream_targets() -> tuple[str, ...]:
    """Export targets that can stream (``export --streaming``), in :data:`TARGETS` order."""
    return tuple(str(f.target) for f in FORMATS.values() if f.target and f.stream_exporter)


def stream_exporter(target_name: str) -> Any:
    """The streaming converter of export target ``target_name``; one line when it cannot stream."""
    fmt = target(target_name)
    if fmt.stream_exporter is None:
        raise EdgekitError(f"--streaming exports to {', '.join(stream_targets())}, not {target_name}")
    return _load(fmt.stream_exporter)


def stream_runner_class(name: str) -> Any:
    """The class running a streaming artifact frame by frame on runtime ``name``."""
    rt = runtime(name)
    if rt.stream_runner is None:
        streams = [r.name for r in RUNTIMES.values() if r.stream_runner]
        raise EdgekitError(f"streaming runs on {', '.join(streams)}, not {name}")
    return _load(rt.stream_runner)


def export_target_for(runtime_name: str) -> str:
    """The export target whose artifacts runtime ``runtime_name`` runs on this machine's process
    (onnxruntime -> onnx, litert -> tflite, ...): what the latency-targeted search exports."""
    rt = runtime(runtime_name)
    targets = [FORMATS[f].target for f in rt.formats if FORMATS[f].target]
    if rt.remote or not targets:
        local = [r.name for r in RUNTIMES.values()
                 if not r.remote and any(FORMATS[f].target for f in r.formats)]
        raise EdgekitError(f"latency runtime {runtime_name!r} not supported; expected one of {', '.join(local)}")
    return str(targets[0])

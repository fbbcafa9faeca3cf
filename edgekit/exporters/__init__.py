"""Export stage: ONNX, TFLite/LiteRT, Core ML and TensorRT artifacts, each behind a parity gate.

The orchestration (:func:`edgekit.exporters.pipeline.export` and ``verify``) lives in
:mod:`~edgekit.exporters.pipeline`; ``edgekit.export`` and ``edgekit.verify`` are bound to
it at the top level. This package's ``__init__`` imports nothing, so a process that only
runs an artifact (the benchmark worker) can import a converter-free module from here
without loading torch.
"""

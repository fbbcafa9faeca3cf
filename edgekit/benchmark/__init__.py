"""Latency benchmarks and reports: ``edgekit bench`` and ``edgekit report``.

=================  ==========================================================
``run.py``         :func:`bench`: artifacts x runtimes x threads -> result rows
``artifact.py``    the file's format (:mod:`edgekit.formats`), manifest, model, lineage
``runners.py``     the session interface; one module per runtime:
                   ``torch_runner``, ``onnxruntime_runner``, ``litert_runner``,
                   ``tensorrt_runner``, ``coreml_runner``, ``adb`` (phones)
``measure.py``     the timing loop; ``stats.py`` percentiles and the noisy flag
``isolate.py``     one process per measurement (``worker.py``), with a timeout
``machine.py``     CPU, cores, OS, memory, load
``accuracy.py``    accuracy on a data spec in the same session
``schema.py``      the result row and file format
``report.py``      Markdown + self-contained HTML; ``plots.py`` its figures
=================  ==========================================================

``edgekit.bench`` and ``edgekit.report`` are bound to :func:`run.bench` and
:func:`report.report` at the top level.
"""

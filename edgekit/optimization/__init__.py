"""``edgekit optimize``: from a checkpoint and a latency budget to the most accurate artifact that meets it.

The package joins stages that exist elsewhere (CURL pruning, recovery by KD or fine-tuning, export with its
parity gate, bench with accuracy, the report) into one measured search:

* :mod:`.budget`: ``2ms@litert`` -> :class:`~.budget.Budget` (milliseconds + runtime);
* :mod:`.plan`: a candidate compression plan and its content key;
* :mod:`.config`: the search options (:class:`~.config.OptimizeConfig`), validated;
* :mod:`.candidate`: one plan carried out and measured, cached under ``DIR/candidates/KEY``;
* :mod:`.baseline`: the original model's torch / ONNX / LiteRT fp32 rows;
* :mod:`.search`: the loop and the choice (:func:`~.search.optimize`);
* :mod:`.summary`: ``optimize.json`` and the one-screen summary.

The package is not called ``optimize``: a subpackage of that name would replace the
top-level function :func:`edgekit.optimize` as soon as one of its modules was imported.
"""

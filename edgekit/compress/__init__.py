"""Model compression: CURL structured pruning and knowledge distillation.

* :mod:`.kd`: Hinton's soft-target KL loss (shared by pruning recovery and ``distill``);
* :mod:`.units`: Torch-Pruning dependency groups as CURL's prunable units;
* :mod:`.curl`: the KL importance criterion (batched masked forward passes);
* :mod:`.baselines`: Torch-Pruning's importances (L1/L2, BN scale, Taylor, random);
* :mod:`.selection`: global one-shot selection under a per-layer minimum keep ratio;
* :mod:`.bn`: BatchNorm statistics re-estimation after pruning;
* :mod:`.recovery`: fine-tuning and the limited-data recipe (mixup+KD, expanded set, label refinement).

The ``edgekit prune`` entry point is :func:`edgekit.compress.prune.prune` (``edgekit.prune``).
"""

"""Model compression: CURL structured pruning and knowledge distillation.

* :mod:`.kd`: Hinton's soft-target KL loss (shared by pruning recovery and ``distill``);
* :mod:`.units`: Torch-Pruning dependency groups as CURL's prunable units;
* :mod:`.curl`: the KL importance criterion (batched masked forward passes);
* :mod:`.criteria`: the registry of importance criteria (CURL exact and Fisher, L1/L2, BN scale, Taylor, random);
* :mod:`.prune_config` / :mod:`.distill_config`: the stages' options, validated;
* :mod:`.loss_terms`: the registry of distillation loss terms (kd, l2, lsh, lshl2);
* :mod:`.selection`: global one-shot selection under a per-layer minimum keep ratio;
* :mod:`.recovery`: fine-tuning and the limited-data recipe (mixup+KD, expanded set, label refinement).

BatchNorm re-estimation after pruning is :mod:`edgekit.training.precise_bn`, shared with every training run.

The ``edgekit prune`` entry point is :func:`edgekit.compress.prune.prune` (``edgekit.prune``).
"""

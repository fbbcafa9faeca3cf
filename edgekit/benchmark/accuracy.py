"""Accuracy of an artifact on a data spec, measured by the same session that was timed.

The validation split is the one the model's training held apart (its checkpoint's recorded
fraction and seed). Images go through the model's own evaluation preprocessing: the input spec from the
artifact's manifest, or the checkpoint's (``eval_transform``), so the number is the
one the deployed model earns. Batches match the artifact's fixed batch size (the last
one is zero-padded and the padding dropped). Classification tasks report top-1 (and
top-5 when there are more than five classes).

Label-distribution models (task ``label_distribution``, from the session, the artifact's
manifest or the source checkpoint) report MAE, RMSE, Pearson correlation and, when the
data gives per-sample sigmas, the epsilon-error (:func:`edgekit.training.metrics.label_metrics`)
of the last output column, the expectation. One forward pass per image: the horizontal-flip
averaging that ``edgekit eval`` applies (the checkpoint's ``flip_test``) is **not** applied
here, since a deployed artifact runs one image once; rows carry ``flip_test: false``, and a
bench MAE can sit slightly above the eval MAE of the same model.
"""
from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from ..errors import EdgekitError
from ..tasks import get_task
from .runners import Session


def _input_spec(job: dict[str, Any], session: Session) -> dict[str, Any]:
    spec = session.info.get("input_spec") or job.get("input_spec") or {}
    if spec.get("mean") is not None and spec.get("resize") is not None:
        return spec
    source = job.get("source_checkpoint")
    if source:
        from ..checkpoint import load_checkpoint

        return load_checkpoint(source).input_spec
    raise EdgekitError("accuracy needs the model's preprocessing: no manifest input spec next to the "
                       "artifact and no source checkpoint")


def _data_record(job: dict[str, Any]) -> dict[str, Any]:
    """How the model's training split its data: from the job (the manifest's ``data``), else
    from the checkpoint the row measures or the artifact came from ({} when none is known)."""
    if job.get("data_record"):
        return dict(job["data_record"])
    source = job["artifact"] if job.get("format") == "torch" else job.get("source_checkpoint")
    if not source:
        return {}
    from ..checkpoint import load_checkpoint

    return load_checkpoint(source).data_record


def validation_data(job: dict[str, Any]) -> Any:
    """The validation split of ``job['data']``, split as the model's training split it (its
    recorded validation fraction and seed; options written in the spec win), so accuracy is
    never measured on images the model was trained on."""
    from ..data import load_recorded

    return load_recorded(_data_record(job), job["data"])


def _task(job: dict[str, Any], session: Session) -> str:
    """The model's task: the session's (torch rows), the job's, the artifact's manifest, else
    the source checkpoint's; classification when nothing says otherwise."""
    task = session.info.get("task") or job.get("task")
    if not task and job.get("format") != "torch":
        from ..exporters.manifest import find_manifest

        task = find_manifest(job["artifact"])[0].get("task")
    if not task and job.get("source_checkpoint"):
        from ..checkpoint import load_checkpoint

        task = load_checkpoint(job["source_checkpoint"]).task
    return str(task or "classify")


def _batches(session: Session, job: dict[str, Any], bundle: Any, n: int) -> Iterator[tuple[np.ndarray, list[Any]]]:
    """(outputs [b, C], targets) over the first ``n`` validation images, in the artifact's batch size."""
    from ..data.transforms import eval_transform

    transform = eval_transform(_input_spec(job, session))
    batch = int(session.info["input_shape"][0])
    for start in range(0, n, batch):
        items = [bundle.val[i] for i in range(start, min(n, start + batch))]
        x = np.stack([transform(img).numpy() for img, _ in items]).astype(np.float32)
        if len(items) < batch:
            x = np.concatenate([x, np.zeros((batch - len(items), *x.shape[1:]), np.float32)])
        yield np.asarray(session.predict(x))[: len(items)].reshape(len(items), -1), [t for _, t in items]


def _label_accuracy(session: Session, job: dict[str, Any], bundle: Any, n: int,
                    task: str = "label_distribution") -> dict[str, Any]:
    """MAE / RMSE / Pearson (/ epsilon-error with sigmas) of the last output column, no flip."""
    import torch

    from ..training.label_distribution import split_target
    from ..training.metrics import label_metrics

    if not get_task(task).accepts_data(bundle.task):
        raise EdgekitError(f"this model estimates a label; {job['data']!r} is a {bundle.task} dataset "
                           "(use a csv:PATH with a label column, or ordinal:...)")
    preds, targets = [], []
    for out, ts in _batches(session, job, bundle, n):
        preds.append(out[:, -1])
        targets += ts
    y, sigma = split_target(torch.tensor(np.asarray(targets, dtype=np.float64)))
    pred = torch.from_numpy(np.concatenate(preds).astype(np.float64)) if preds else torch.zeros(0)
    return {**label_metrics(pred, y, sigma), "flip_test": False}


def measure_accuracy(session: Session, job: dict[str, Any], max_samples: int | None = None) -> dict[str, Any]:
    """Top-1/top-5 (%) of ``session`` on the validation split of ``job['data']``, or, for a
    label-distribution model, MAE, RMSE, Pearson and epsilon-error (see the module docstring).
    A streaming artifact scores whole clips frame by frame (:mod:`edgekit.benchmark.streaming`)."""
    if session.info.get("streaming"):
        from .streaming import stream_accuracy

        return stream_accuracy(session, job, validation_data(job), max_samples)
    task = _task(job, session)
    if not get_task(task).bench_accuracy:
        raise EdgekitError(f"accuracy with --data supports classification and label distributions; this "
                           f"model's task is {task}")
    bundle = validation_data(job)
    n = len(bundle.val) if max_samples is None else min(len(bundle.val), max_samples)
    if not get_task(task).class_labels:
        return {"data": job["data"], "split": "val", **_label_accuracy(session, job, bundle, n, task)}
    labels = job.get("labels") or session.info.get("labels")
    if labels and bundle.labels and list(labels) != list(bundle.labels):
        raise EdgekitError(f"the model's labels ({', '.join(labels[:4])}...) differ from the data's "
                           f"({', '.join(bundle.labels[:4])}...)")
    hits1, hits5, targets = [], [], []
    for logits, ts in _batches(session, job, bundle, n):
        batch_targets = np.asarray([int(t) for t in ts])
        order = np.argsort(-logits, axis=1)
        hits1.append(order[:, 0] == batch_targets)
        hits5.append((order[:, :5] == batch_targets[:, None]).any(axis=1))
        targets.append(batch_targets)
    correct1 = np.concatenate(hits1) if hits1 else np.zeros(0, bool)
    out: dict[str, Any] = {"data": job["data"], "split": "val", "n": n,
                           "top1": 100.0 * int(correct1.sum()) / max(n, 1)}
    if len(bundle.labels) > 5:
        out["top5"] = 100.0 * int(np.concatenate(hits5).sum()) / max(n, 1)
    if n >= 4:
        out["halves"] = split_halves(correct1, np.concatenate(targets))
    return out


#: Seed of :func:`split_halves`: fixed, so every model measured on a split gets the same halves.
HALVES_SEED = 20260


def split_halves(correct: np.ndarray, targets: np.ndarray) -> dict[str, Any]:
    """Top-1 on two fixed, class-stratified halves of the measured images: ``select`` and ``report``.

    A search that chooses among many models by accuracy (``edgekit optimize``) chooses on the
    ``select`` half and reports the ``report`` half, which the choice never saw: the maximum of
    many noisy accuracies is biased upward on the images it was taken on.
    """
    from ..data.datasets import seeded_split

    select, report = seeded_split(len(targets), 0.5, HALVES_SEED, [int(t) for t in targets])
    return {"select": {"n": len(select), "top1": 100.0 * float(correct[select].mean()) if select else None},
            "report": {"n": len(report), "top1": 100.0 * float(correct[report].mean()) if report else None},
            "seed": HALVES_SEED}

"""The report's figures, each a PNG (bytes) drawn with matplotlib's Agg backend.

* ``latency_plot``: p50 per artifact/runtime/threads as bars, with whiskers up to p90
  (thick) and p99 (thin); noisy rows hatched.
* ``distribution_plot``: every timed run per row as a box plot (log axis when the
  rows span more than a decade).
* ``pareto_plot``: accuracy against p50 latency with the Pareto front (no faster row is
  also more accurate) as a step line; labels placed so they never overlap (:mod:`labels`).
* ``size_speedup_plot``: artifact size, and speed-up of each row against its own torch
  eager row and against the original model's torch eager row.
"""
from __future__ import annotations

import io
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ..formats import RUNTIMES  # noqa: E402
from .labels import place_labels  # noqa: E402

#: each runtime's colour, as the runtime table (:mod:`edgekit.formats`) names it
_COLORS = {name: rt.color for name, rt in RUNTIMES.items()}


_DPI = 110


def _png(fig: Any, layout: bool = True) -> bytes:
    """The figure as PNG bytes; ``layout=False`` keeps a layout already fixed (placed labels)."""
    buf = io.BytesIO()
    if layout:
        fig.tight_layout()
    fig.savefig(buf, format="png", dpi=_DPI)
    plt.close(fig)
    return buf.getvalue()


def _height(n: int) -> float:
    return max(2.5, 0.32 * n + 1.2)


def latency_plot(rows: Sequence[dict[str, Any]], labels: Sequence[str]) -> bytes:
    fig, ax = plt.subplots(figsize=(9, _height(len(rows))))
    y = list(range(len(rows)))[::-1]
    for yi, row in zip(y, rows):
        p50 = row.get("p50_ms") if row.get("p50_ms") is not None else row["mean_ms"]
        ax.barh(yi, p50, color=_COLORS.get(row["runtime"], "#17becf"), hatch="//" if row.get("noisy") else None,
                edgecolor="black", linewidth=0.4)
        if row.get("p90_ms") is not None:
            ax.plot([p50, row["p90_ms"]], [yi, yi], color="black", linewidth=2.2)
        if row.get("p99_ms") is not None:
            ax.plot([row.get("p90_ms") or p50, row["p99_ms"]], [yi, yi], color="black", linewidth=0.8)
            ax.plot([row["p99_ms"]], [yi], marker="|", color="black", markersize=8)
    ax.set_yticks(y, labels, fontsize=8)
    p50s = [r.get("p50_ms") or r["mean_ms"] for r in rows]
    tops = [r.get("p99_ms") or r.get("p90_ms") or r["mean_ms"] for r in rows]
    log = min(p50s) > 0 and max(tops) / min(p50s) > 20
    if log:  # rows spanning decades (a 0.3 ms int8 model next to a 700 ms contended one)
        ax.set_xscale("log")
    ax.set_xlabel(f"latency (ms{', log scale' if log else ''}): bar p50, thick whisker to p90, thin to p99; "
                  "hatched = noisy")
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)


def distribution_plot(rows: Sequence[dict[str, Any]], labels: Sequence[str]) -> bytes:
    data = [r["latencies_ms"] for r in rows]
    fig, ax = plt.subplots(figsize=(9, _height(len(rows))))
    ax.boxplot(data[::-1], orientation="horizontal", whis=(1, 99), showfliers=True, flierprops={"markersize": 2})
    ax.set_yticks(range(1, len(rows) + 1), list(labels)[::-1], fontsize=8)
    lo = min(min(d) for d in data)
    hi = max(max(d) for d in data)
    if lo > 0 and hi / lo > 10:
        ax.set_xscale("log")
    ax.set_xlabel("latency of every timed run (ms); box = quartiles, whiskers p1..p99")
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of points no other point beats on both latency (lower) and accuracy (higher)."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], float("-inf")
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def pareto_figure(rows: Sequence[dict[str, Any]], labels: Sequence[str]) -> Any:
    """The accuracy-latency figure (matplotlib Figure), labels placed without overlap."""
    pts = [(r.get("p50_ms") if r.get("p50_ms") is not None else r["mean_ms"], r["accuracy"]["top1"]) for r in rows]
    front = pareto_front(pts)
    fig, ax = plt.subplots(figsize=(9, max(5.0, 0.16 * len(rows) + 2.5)), dpi=_DPI)
    ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=30, zorder=3,
               color=[_COLORS.get(r["runtime"], "#17becf") for r in rows])
    fx = [pts[i][0] for i in front]
    fy = [pts[i][1] for i in front]
    ax.step(fx, fy, where="post", color="#d62728", linewidth=1.2, label="Pareto front", zorder=2)
    ax.margins(0.12)
    ax.set_xlabel("p50 latency (ms)")
    ax.set_ylabel("top-1 accuracy (%)")
    legend = ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()  # before placing: a later layout change would move the points under the labels
    ticks = [*ax.get_xticklabels(), *ax.get_yticklabels(), ax.xaxis.label, ax.yaxis.label]
    steps = [xy for i, j in zip(front, front[1:]) for xy in ((pts[i][0], pts[i][1]), (pts[j][0], pts[i][1]))]
    steps += [(pts[front[-1]][0], pts[front[-1]][1])]
    place_labels(ax, pts, labels, fontsize=7, obstacles=[legend, *ticks], lines=[steps])
    return fig


def pareto_plot(rows: Sequence[dict[str, Any]], labels: Sequence[str]) -> bytes:
    return _png(pareto_figure(rows, labels), layout=False)


def size_speedup_plot(rows: Sequence[dict[str, Any]], labels: Sequence[str], own: Sequence[float | None],
                      original: Sequence[float | None] | None = None) -> bytes:
    """Size bars, and speed-up bars against the own torch eager row (solid) and the
    original model's torch eager row (hatched) where the report found one."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, _height(len(rows))), sharey=True)
    y = list(range(len(rows)))[::-1]
    colors = [_COLORS.get(r["runtime"], "#17becf") for r in rows]
    ax1.barh(y, [r.get("model_size_mb") or 0 for r in rows], color=colors)
    ax1.set_yticks(y, labels, fontsize=8)
    ax1.set_xlabel("artifact size (MB)")
    if original is not None and any(original):
        ax2.barh([v + 0.2 for v in y], [s or 0 for s in own], height=0.4, color=colors, label="vs own torch eager")
        ax2.barh([v - 0.2 for v in y], [s or 0 for s in original], height=0.4, color=colors, hatch="//",
                 edgecolor="white", label="vs original model's torch eager")
        ax2.legend(fontsize=7, loc="lower right")
    else:
        ax2.barh(y, [s or 0 for s in own], color=colors)
    ax2.axvline(1.0, color="black", linewidth=0.8)
    ax2.set_xlabel("speed-up vs torch eager at the same threads and batch (p50 ratio)")
    for ax in (ax1, ax2):
        ax.grid(axis="x", alpha=0.3)
    return _png(fig)

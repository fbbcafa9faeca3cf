"""Point labels that do not overlap: greedy placement for a scatter plot's annotations.

Rows of one model crowd together in an accuracy-latency plot (an ONNX and a TFLite
artifact of the same checkpoint sit a few percent apart), and labels drawn at a fixed
offset then print over each other. Each label is placed in turn at the first free spot,
trying offsets on rings of growing radius around its point (upper right first), then
the free spot nearest to its point anywhere in the figure. A spot is free when the
label's box (measured with the figure's renderer) lies inside the figure and clear of
every marker, every label already placed and the given obstacles (legend, tick labels).
A label away from its point gets a thin leader line.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

_RINGS_PT = (5, 10, 16, 24, 34, 46, 60, 78, 100, 125, 155)
_ANGLES = (45, 135, -45, -135, 0, 180, 90, -90, 22.5, 157.5, -22.5, -157.5, 67.5, 112.5, -67.5, -112.5)
_LEADER_PT = 12  # labels farther than this from their point get a leader line
_PAD_PX = 1.0


def _box(anchor: tuple[float, float], size: tuple[float, float], ha: str, va: str) -> np.ndarray:
    x, y = anchor
    w, h = size
    x0 = x if ha == "left" else x - w if ha == "right" else x - w / 2
    y0 = y if va == "bottom" else y - h if va == "top" else y - h / 2
    return np.array([x0, y0, x0 + w, y0 + h])


def _free(box: np.ndarray, taken: np.ndarray, frame: np.ndarray) -> bool:
    if box[0] < frame[0] or box[1] < frame[1] or box[2] > frame[2] or box[3] > frame[3]:
        return False
    if not len(taken):
        return True
    return not np.any((box[0] < taken[:, 2] + _PAD_PX) & (box[2] + _PAD_PX > taken[:, 0])
                      & (box[1] < taken[:, 3] + _PAD_PX) & (box[3] + _PAD_PX > taken[:, 1]))


def _crosses(seg: np.ndarray, box: np.ndarray) -> bool:
    """Whether the segment (x0, y0, x1, y1) passes through the box (Liang-Barsky clipping)."""
    x0, y0, x1, y1 = seg
    dx, dy = x1 - x0, y1 - y0
    lo, hi = 0.0, 1.0
    for p, q in ((-dx, x0 - box[0]), (dx, box[2] - x0), (-dy, y0 - box[1]), (dy, box[3] - y0)):
        if p == 0:
            if q < 0:
                return False
            continue
        t = q / p
        if p < 0:
            lo = max(lo, t)
        else:
            hi = min(hi, t)
        if lo > hi:
            return False
    return True


def _leader(point: np.ndarray, box: np.ndarray) -> np.ndarray:
    """The leader line's segment: from the point to the nearest point of the label's box."""
    return np.array([point[0], point[1], min(max(point[0], box[0]), box[2]), min(max(point[1], box[1]), box[3])])


def _clear_of_leaders(box: np.ndarray, point: np.ndarray, labels: list[np.ndarray],
                      leaders: list[np.ndarray], own: bool) -> bool:
    """A new label crosses no leader line already drawn, nor (``own``) its leader a label."""
    if any(_crosses(seg, box) for seg in leaders):
        return False
    line = _leader(point, box)
    return not own or not any(_crosses(line, b) for b in labels)


def _nearest_free(point: np.ndarray, size: tuple[float, float], taken: np.ndarray, frame: np.ndarray,
                  labels: list[np.ndarray], leaders: list[np.ndarray]) -> np.ndarray | None:
    """Lower-left corner of the free box nearest ``point`` on a grid over the figure,
    preferring one whose leader line crosses no label (and no leader the label)."""
    w, h = size
    step = max(h / 2, 1.0)
    xs = np.arange(frame[0], frame[2] - w, step)
    ys = np.arange(frame[1], frame[3] - h, step)
    if not len(xs) or not len(ys):
        return None
    gx, gy = (a.ravel() for a in np.meshgrid(xs, ys))
    ok = np.ones(gx.shape, dtype=bool)
    for t in taken:
        ok &= ~((gx < t[2] + _PAD_PX) & (gx + w + _PAD_PX > t[0]) & (gy < t[3] + _PAD_PX) & (gy + h + _PAD_PX > t[1]))
    if not ok.any():
        return None
    cx, cy = gx + w / 2, gy + h / 2
    order = np.flatnonzero(ok)[np.argsort(((cx - point[0]) ** 2 + (cy - point[1]) ** 2)[ok], kind="stable")]
    for i in order[:400]:
        box = np.array([gx[i], gy[i], gx[i] + w, gy[i] + h])
        if _clear_of_leaders(box, point, labels, leaders, own=True):
            return box[:2]
    return np.array([gx[order[0]], gy[order[0]]])


def place_labels(ax: Any, xy: Sequence[tuple[float, float]], texts: Sequence[str], *, fontsize: float = 7,
                 marker_pt: float = 6, obstacles: Sequence[Any] = (),
                 lines: Sequence[Sequence[tuple[float, float]]] = ()) -> list[Any]:
    """Annotate each point of ``xy`` (data coordinates) with its text so that no two labels
    overlap; returns the annotations. Place it after the figure's layout is final (a later
    ``tight_layout`` moves the axes and undoes the placement). ``obstacles`` are artists
    (legend, texts) that labels keep clear of; ``lines`` are polylines in data coordinates
    (the Pareto front) that no label is printed over."""
    fig = ax.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    px = fig.dpi / 72.0
    frame = np.array(fig.bbox.extents) + np.array([2, 2, -2, -2])
    points = ax.transData.transform(np.asarray(xy, dtype=float).reshape(-1, 2))
    half = marker_pt * px / 2
    taken = [np.array([x - half, y - half, x + half, y + half]) for x, y in points]
    for artist in obstacles:
        if artist is not None and artist.get_visible() and (not hasattr(artist, "get_text") or artist.get_text()):
            taken.append(np.array(artist.get_window_extent(renderer).extents))

    out, labels, leaders = [], [], []
    for line in lines:
        pts = ax.transData.transform(np.asarray(line, dtype=float).reshape(-1, 2))
        leaders += [np.array([*a, *b]) for a, b in zip(pts[:-1], pts[1:])]
    for data_xy, point, text in zip(xy, points, texts):
        probe = fig.text(0, 0, text, fontsize=fontsize)
        ext = probe.get_window_extent(renderer)
        probe.remove()
        size = (ext.width, ext.height)
        arr = np.array(taken)
        spot = None
        for r in _RINGS_PT:
            for angle in _ANGLES:
                dx, dy = r * math.cos(math.radians(angle)), r * math.sin(math.radians(angle))
                ha = "left" if dx > 0.5 else "right" if dx < -0.5 else "center"
                va = "bottom" if dy > 0.5 else "top" if dy < -0.5 else "center"
                box = _box((point[0] + dx * px, point[1] + dy * px), size, ha, va)
                if _free(box, arr, frame) and _clear_of_leaders(box, point, labels, leaders, r > _LEADER_PT):
                    spot = (dx, dy, ha, va, box)
                    break
            if spot:
                break
        if spot is None:
            corner = _nearest_free(point, size, arr, frame, labels, leaders)
            if corner is not None:
                box = np.array([corner[0], corner[1], corner[0] + size[0], corner[1] + size[1]])
                spot = ((corner[0] - point[0]) / px, (corner[1] - point[1]) / px, "left", "bottom", box)
            else:  # no free space left in the whole figure: the closest spot, overlapping
                box = _box((point[0] + 5 * px, point[1] + 5 * px), size, "left", "bottom")
                spot = (5.0, 5.0, "left", "bottom", box)
        dx, dy, ha, va, box = spot
        leader = math.hypot(dx, dy) > _LEADER_PT
        ann = ax.annotate(text, tuple(data_xy), xytext=(dx, dy),
                          textcoords="offset points", ha=ha, va=va, fontsize=fontsize, annotation_clip=False,
                          arrowprops={"arrowstyle": "-", "color": "#888888", "linewidth": 0.5,
                                      "shrinkA": 0, "shrinkB": 2} if leader else None)
        taken.append(box)
        labels.append(box)
        if leader:
            leaders.append(_leader(point, box))
        out.append(ann)
    return out

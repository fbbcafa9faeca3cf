"""The expanded set of CURL's limited-data recipe, made label-preserving per dataset.

CURL (Luo & Wu, "Neural Network Pruning with Residual-Connections and Limited-Data",
CVPR 2020, section 4, the CUB-200 pipeline) expands every training image into six
versions that all keep the image's label: the original, 2x2 / 3x3 / 4x4 patch shuffles,
a cutout, and a rotation in [0, 360). For birds that is true enough: a bird's species
lives in its texture and colour, not in its orientation or layout. It is false where the
class *is* the orientation or the layout: a digit turned by 180 degrees or with shuffled
strokes is another digit (6 vs 9), a square turned by 45 degrees is the synthetic set's
diamond and a horizontal bar turned by 90 degrees its vertical bar, and a crop rescales the
disk whose size is the ordinal set's label. Measured with 10 % of the training data
(benchmarks/limited_data.md), once stage 3 trains the student the paper's expansion costs
16 points on the synthetic shapes and 1.4 on digits against the presets below.

An :class:`Expansion` says which versions each training image contributes and the
ranges of the operations that make them:

``versions``
    One entry per version, each an operation or operations joined by ``+`` (applied left
    to right): ``original``; ``rotate`` (by ``U(-rotate, rotate)`` degrees; ``rotate=180``
    is the paper's full turn); ``crop`` (a crop keeping ``U(crop, 1)`` of each side at a
    random place, resized back: a scale and shift jitter); ``flip`` (horizontal mirror);
    ``shuffleN`` (an N x N patch shuffle, N in 2..8); ``cutout`` (a zero rectangle whose
    side is ``U(*cutout)`` of the image's).
``fill``
    What a rotation uncovers: ``black`` (the paper's) or ``border`` (the median colour of
    the image's border, so a textured background continues instead of black wedges).

Presets (:data:`PRESETS`), chosen from the data by :func:`policy_for`:

* ``paper``: the six versions above; image folders (natural photos, the paper's setting).
* ``digits``: rotations within +-15 degrees, crops keeping >= 80 % of a side, small
  cutouts (10-25 % of a side), no flips (a mirrored 2, 3, 7 is no digit), no patch shuffles.
* ``shapes``: the built-in ``synthetic`` set (a shape on a noisy background, the class is
  the shape): mirrors (every shape is left-right symmetric), rotations within +-15 degrees
  (square and diamond are 45 degrees apart, the bars 90), crops keeping >= 85 % of a side
  (shapes touch the border), no cutout (it can hide a 10 px shape), no patch shuffles.
* ``ordinal``: the built-in ``ordinal`` set (the label is a disk's size): mirrors and
  rotations (size is invariant to both), no crops, cutouts or shuffles (all change the
  visible size).
* ``natural``: ``csv:`` image lists (regression and label-distribution targets such as
  age): mirrors, +-15 degree rotations, crops >= 75 %, cutout; no shuffles, no full turns.
* ``none``: the original images only (stage 3 then refines labels without expansion).

Versions with ``flip`` are dropped when the checkpoint's task says a mirror changes the
label (``flip_test`` off). A user overrides the choice with :func:`parse_expansion` text:
a preset name, ``key=value`` options on top of the inferred preset, or both
(``digits:rotate=10,crop=0.9``, ``versions=original/rotate/rotate+crop``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from PIL import Image

from ..errors import EdgekitError

OPS = ("original", "rotate", "crop", "flip", "cutout")
SHUFFLE_GRIDS = range(2, 9)
FILLS = ("black", "border")


@dataclass(frozen=True)
class Expansion:
    """Which versions of each training image the expanded set holds (see module docstring)."""

    versions: tuple[str, ...]
    rotate: float = 15.0
    crop: float = 0.8
    cutout: tuple[float, float] = (0.2, 0.5)
    fill: str = "border"
    name: str = "custom"

    def __post_init__(self) -> None:
        if not self.versions:
            raise EdgekitError("an expansion needs at least one version (use versions=original for none)")
        for v in self.versions:
            for op in v.split("+"):
                if op not in OPS and not _shuffle_grid(op):
                    raise EdgekitError(f"unknown expansion operation {op!r} in {v!r}; use "
                                       f"{', '.join(OPS)} or shuffle2..shuffle8, joined by +")
        if not (isinstance(self.rotate, (int, float)) and 0 <= self.rotate <= 180):
            raise EdgekitError(f"rotate must be a number of degrees in [0, 180], got {self.rotate!r}")
        if not (isinstance(self.crop, (int, float)) and 0 < self.crop <= 1):
            raise EdgekitError(f"crop must be the kept side fraction in (0, 1], got {self.crop!r}")
        lo, hi = self.cutout
        if not (0 < lo <= hi < 1):
            raise EdgekitError(f"cutout must be side fractions 0 < lo <= hi < 1, got {lo}-{hi}")
        if self.fill not in FILLS:
            raise EdgekitError(f"fill must be one of {', '.join(FILLS)}, got {self.fill!r}")

    def __len__(self) -> int:
        return len(self.versions)

    def ops(self) -> set[str]:
        """Every operation any version uses."""
        return {op for v in self.versions for op in v.split("+")}

    def describe(self) -> str:
        """One line for logs and provenance: ``name: versions (ranges)``."""
        used = self.ops()
        ranges = ([f"rotate +-{self.rotate:g} deg ({self.fill} fill)"] if "rotate" in used else []) \
            + ([f"crop >= {self.crop:g}"] if "crop" in used else []) \
            + ([f"cutout {self.cutout[0]:g}-{self.cutout[1]:g}"] if "cutout" in used else [])
        return f"{self.name}: {', '.join(self.versions)}" + (f" ({'; '.join(ranges)})" if ranges else "")

    def apply(self, img: Image.Image, index: int, rng: np.random.Generator) -> Image.Image:
        """Version ``index % len(self)`` of ``img``, its random draws taken from ``rng``."""
        for op in self.versions[index % len(self)].split("+"):
            img = _apply_op(self, op, img, rng)
        return img


def _shuffle_grid(op: str) -> int | None:
    if op.startswith("shuffle") and op[7:].isdigit() and int(op[7:]) in SHUFFLE_GRIDS:
        return int(op[7:])
    return None


PRESETS: dict[str, Expansion] = {
    "paper": Expansion(("original", "shuffle2", "shuffle3", "shuffle4", "cutout", "rotate"), rotate=180.0,
                       cutout=(0.2, 0.5), fill="black", name="paper"),
    "digits": Expansion(("original", "rotate", "crop", "rotate+crop", "cutout", "rotate+crop+cutout"),
                        rotate=15.0, crop=0.8, cutout=(0.1, 0.25), name="digits"),
    "shapes": Expansion(("original", "flip", "rotate", "crop", "flip+rotate", "rotate+crop"),
                        rotate=15.0, crop=0.85, name="shapes"),
    "ordinal": Expansion(("original", "flip", "rotate", "flip+rotate"), rotate=180.0, name="ordinal"),
    "natural": Expansion(("original", "flip", "rotate", "crop", "flip+crop", "cutout"), rotate=15.0, crop=0.75,
                         cutout=(0.2, 0.5), name="natural"),
    "none": Expansion(("original",), name="none"),
}

def policy_for(spec: str, info: dict[str, Any] | None = None, flip_ok: bool = True) -> Expansion:
    """The expansion a dataset declares (``info["expansion"]``, preset text) or its source's preset
    (:attr:`edgekit.data.sources.DataSource.expansion`; ``paper`` for an unregistered scheme);
    ``flip_ok=False`` drops versions with a flip."""
    from ..data.sources import SOURCES

    declared = (info or {}).get("expansion")
    if declared:
        policy = parse_expansion(str(declared), spec)
    else:
        source = SOURCES.get(spec.partition(":")[0])
        policy = PRESETS[source.expansion if source is not None else "paper"]
    return policy if flip_ok else without_flips(policy)


def without_flips(policy: Expansion) -> Expansion:
    """``policy`` less every version that mirrors the image (at least the original is kept)."""
    kept = tuple(v for v in policy.versions if "flip" not in v.split("+"))
    return policy if kept == policy.versions else replace(policy, versions=kept or ("original",))


def parse_expansion(text: str, spec: str = "", info: dict[str, Any] | None = None) -> Expansion:
    """A user's expansion choice: ``auto`` (the data's own, :func:`policy_for`), a preset name, or
    ``key=value`` options (``versions`` with ``/`` between versions, ``rotate``, ``crop``,
    ``cutout=LO-HI``, ``fill``) on top of the named or the data's preset: ``digits:rotate=10``."""
    if not isinstance(text, str) or not text.strip():
        raise EdgekitError("expansion must be a preset name or key=value options, got an empty value")
    head, sep, rest = text.strip().partition(":")
    if not sep and "=" in head:
        head, rest = "auto", head
    if head == "auto":
        base = policy_for(spec, info)
    elif head in PRESETS:
        base = PRESETS[head]
    else:
        raise EdgekitError(f"unknown expansion preset {head!r}; use auto, {', '.join(PRESETS)} or key=value options")
    changes: dict[str, Any] = {}
    for item in filter(None, (s.strip() for s in rest.split(","))):
        key, eq, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not eq or not value:
            raise EdgekitError(f"malformed expansion option {item!r}; expected key=value")
        if key == "versions":
            changes[key] = tuple(v.strip() for v in value.split("/") if v.strip())
        elif key in ("rotate", "crop"):
            changes[key] = _number(key, value)
        elif key == "cutout":
            lo, dash, hi = value.partition("-")
            changes[key] = (_number(key, lo), _number(key, hi if dash else lo))
        elif key == "fill":
            changes[key] = value
        else:
            raise EdgekitError(f"unknown expansion option {key!r}; use versions, rotate, crop, cutout or fill")
    if not changes:
        return base
    return replace(base, **changes, name=f"{base.name}+{','.join(sorted(changes))}")


def _number(key: str, value: str) -> float:
    try:
        out = float(value)
    except ValueError:
        raise EdgekitError(f"expansion option {key} must be a number, got {value!r}") from None
    if not math.isfinite(out):
        raise EdgekitError(f"expansion option {key} must be finite, got {value!r}")
    return out


def patch_shuffle(img: np.ndarray, grid: int, rng: np.random.Generator) -> np.ndarray:
    """Split an HxW(xC) image into grid x grid equal blocks and permute them (edges cropped to fit)."""
    h, w = img.shape[0] // grid, img.shape[1] // grid
    if h == 0 or w == 0:
        return img.copy()
    blocks = [img[i * h:(i + 1) * h, j * w:(j + 1) * w] for i in range(grid) for j in range(grid)]
    order = rng.permutation(len(blocks))
    out = img.copy()
    for k, src in enumerate(order):
        i, j = divmod(k, grid)
        out[i * h:(i + 1) * h, j * w:(j + 1) * w] = blocks[src]
    return out


def cutout(img: np.ndarray, rng: np.random.Generator, side: tuple[float, float] = (0.2, 0.5)) -> np.ndarray:
    """Zero a rectangle of side alpha*H x alpha*W, alpha ~ U(*side), at a random place."""
    a = rng.uniform(*side)
    hh, ww = max(1, int(a * img.shape[0])), max(1, int(a * img.shape[1]))
    y, x = int(rng.integers(0, img.shape[0] - hh + 1)), int(rng.integers(0, img.shape[1] - ww + 1))
    out = img.copy()
    out[y:y + hh, x:x + ww] = 0
    return out


def border_colour(img: Image.Image) -> int | tuple[int, ...]:
    """The per-channel median of the image's outermost pixels (what a rotation fills with)."""
    a = np.asarray(img)
    edge = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]]).reshape(-1, *a.shape[2:])
    med = np.median(edge, axis=0).round().astype(int)
    return int(med) if med.ndim == 0 else tuple(int(v) for v in med)


def random_crop(img: Image.Image, keep: float, rng: np.random.Generator) -> Image.Image:
    """A crop keeping ``U(keep, 1)`` of each side at a random place, resized back to the image's size."""
    w, h = img.size
    s = rng.uniform(keep, 1.0)
    cw, ch = max(1, round(s * w)), max(1, round(s * h))
    x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    return img.resize((w, h), Image.BILINEAR, box=(x, y, x + cw, y + ch))


def _apply_op(policy: Expansion, op: str, img: Image.Image, rng: np.random.Generator) -> Image.Image:
    if op == "original":
        return img
    if op == "rotate":
        fill = border_colour(img) if policy.fill == "border" else 0 if img.mode == "L" else (0,) * len(img.getbands())
        return img.rotate(float(rng.uniform(-policy.rotate, policy.rotate)), resample=Image.BILINEAR,
                          fillcolor=fill)
    if op == "crop":
        return random_crop(img, policy.crop, rng)
    if op == "flip":
        return img.transpose(Image.FLIP_LEFT_RIGHT)
    arr = np.asarray(img)
    grid = _shuffle_grid(op)
    arr = patch_shuffle(arr, grid, rng) if grid else cutout(arr, rng, policy.cutout)
    return Image.fromarray(np.ascontiguousarray(arr))

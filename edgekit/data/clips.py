"""Clip datasets and TSN segment sampling: the data side of the ``clip_classify`` task.

A clip dataset yields ``(clip, label)`` pairs where ``clip`` is a lazy frame source (frames
in memory, a folder of JPEGs, a video file) with ``len(clip)`` frames and
``clip.read(indices) -> uint8 (k, H, W, 3)``: only the frames a sample needs are ever
decoded. The clip transform (:class:`ClipTransform`) picks ``T`` frame indices, reads
them and applies one spatial transform to all of them with the same random parameters,
giving a float tensor ``(T, C, H, W)``; a DataLoader batches these to ``(N, T, C, H, W)``,
the input of edgekit's clip models.

**Segment sampling** follows Wang et al., "Temporal Segment Networks: Towards Good
Practices for Deep Action Recognition" (ECCV 2016), section 3.1: the clip is cut into
``T`` equal segments and one frame is taken from each, at a random offset in training and
at the segment's centre in evaluation (as TSM, Lin et al. 2019, does too). **Temporal
jitter** (training only): the segments span a random window covering ``1 - jitter`` to all
of the clip, at a random start, which also varies the apparent speed. A clip with fewer
than ``T`` frames is **stretched**: the same formula then repeats frames in order
(``0 0 1 1 2 2 ...``) rather than looping, since a loop would put the end of a gesture
before its start and reverse its direction.

**No horizontal flip**: a mirror turns a left swipe into a right swipe, so clip training
uses the image presets of :func:`edgekit.data.transforms.train_transform` without their
flip (``standard`` -> ``no_flip``, ``dldl`` -> ``dldl_no_flip``: :data:`NO_FLIP`; the clip
transforms are :func:`edgekit.data.transforms.clip_train_transform` and ``clip_eval_transform``,
above this module), and large inputs crop at
least 40 % of the frame area (TSN's scale jittering keeps most of the frame; the image
preset's 8 % would often crop the hand out).

**Frames T** live in the input spec (``spec["frames"]``, shape ``[T, C, H, W]``, kind
``clip``; see :func:`edgekit.data.transforms.make_input_spec`), so a checkpoint records
them and every stage samples the same way; :func:`with_frames` sets them on an existing
spec (the trainer's ``--frames``) and :func:`frame_spec` gives the per-frame image spec a
streaming model takes.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision import tv_tensors

from ..errors import EdgekitError
from .folders import files_by_class, open_class_folders

log = logging.getLogger("edgekit.data")

__all__ = ["VIDEO_EXTENSIONS", "DEFAULT_FRAMES", "ArrayClip", "ArrayClips", "ClipList", "ClipTransform",
           "FrameFiles", "VideoFile", "frame_spec",
           "is_clip", "open_videofolder", "probe_video", "segment_indices", "with_frames"]

VIDEO_EXTENSIONS = (".mp4", ".avi", ".webm", ".mkv", ".mov", ".m4v")
#: frames per clip sample when nothing else says (TSM trains Jester with 8 segments)
DEFAULT_FRAMES = 8
#: the smallest crop area, as a fraction of the frame, for clips above 64 px
MIN_CROP_SCALE = 0.4
#: the default temporal jitter (fraction of the clip the training window may leave out)
DEFAULT_JITTER = 0.2


# ---------------------------------------------------------------------------------------
# frame sources


class ArrayClip:
    """Frames already in memory: a uint8 array ``(L, H, W, 3)``."""

    def __init__(self, frames: np.ndarray) -> None:
        self.frames = frames

    def __len__(self) -> int:
        return len(self.frames)

    def read(self, indices: Sequence[int]) -> np.ndarray:
        return self.frames[np.asarray(indices, dtype=np.int64)]


class FrameFiles:
    """A clip stored as one image file per frame (Jester's ``00001.jpg ...``).

    A frame that fails to decode is replaced by the nearest readable frame of the same
    clip (logged); a clip with no readable frame among those asked for is an error."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self.paths = list(paths)

    def __len__(self) -> int:
        return len(self.paths)

    def _load(self, i: int) -> np.ndarray | None:
        try:
            with Image.open(self.paths[i]) as img:
                return np.asarray(img.convert("RGB"))
        except Exception:  # PIL raises many types for broken files
            return None

    def read(self, indices: Sequence[int]) -> np.ndarray:
        cache: dict[int, np.ndarray | None] = {}
        out = []
        for i in indices:
            for j in sorted(range(len(self.paths)), key=lambda j: (abs(j - i), j)):
                if j not in cache:
                    cache[j] = self._load(j)
                    if cache[j] is None:
                        log.warning("unreadable frame %s; using a neighbouring frame", self.paths[j])
                if cache[j] is not None:
                    out.append(cache[j])
                    break
            else:
                raise EdgekitError(f"no readable frame in {self.paths[0].parent}")
        return np.stack(out)


def _open_video(path: Path) -> Any:
    try:
        import av
    except ImportError:
        raise EdgekitError('reading video files needs PyAV: pip install "edgekit[video]"') from None
    return av.open(str(path))


def probe_video(path: Path) -> int:
    """The number of frames of the video at ``path``; 0 when it cannot be decoded.

    The first frame is decoded (so a file that opens but holds no decodable video counts
    as unreadable); the count comes from the container's index, or from counting the
    video packets when the container does not say (webm). Decoding whole files at scan time
    would cost as much as an epoch; a file that ends early is handled when read."""
    try:
        with _open_video(path) as container:
            if not container.streams.video:
                return 0
            stream = container.streams.video[0]
            next(container.decode(stream))
            count = int(stream.frames or 0)
            if count <= 0:
                container.seek(0)
                count = sum(1 for packet in container.demux(stream) if packet.size)
            return count
    except EdgekitError:
        raise
    except Exception:  # PyAV raises FFmpeg errors, StopIteration for empty streams, ...
        return 0


class VideoFile:
    """A clip in a video file, decoded with PyAV up to the last frame asked for.

    Indices past the frames the file really holds (its index overstated them) read its
    last decoded frame."""

    def __init__(self, path: Path, num_frames: int) -> None:
        self.path, self.num_frames = Path(path), int(num_frames)

    def __len__(self) -> int:
        return self.num_frames

    def read(self, indices: Sequence[int]) -> np.ndarray:
        indices = [int(i) for i in indices]
        wanted, last_wanted = set(indices), max(indices)
        got: dict[int, np.ndarray] = {}
        try:
            with _open_video(self.path) as container:
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"
                for i, frame in enumerate(container.decode(stream)):
                    if i in wanted or not got:  # keep the first frame: a file may end early
                        got[i] = frame.to_ndarray(format="rgb24")
                    if i >= last_wanted:
                        break
        except EdgekitError:
            raise
        except Exception as exc:  # a damaged tail keeps the frames decoded before it
            if not got:
                raise EdgekitError(f"cannot decode video {self.path}: {exc}") from None
        if not got:
            raise EdgekitError(f"video {self.path} has no decodable frame")
        return np.stack([got[i] if i in got else _nearest(got, i) for i in indices])


def _nearest(frames: dict[int, np.ndarray], i: int) -> np.ndarray:
    return frames[min(frames, key=lambda j: (abs(j - i), j))]


# ---------------------------------------------------------------------------------------
# datasets


class ArrayClips(Dataset):
    """In-memory uint8 clips ``(N, L, H, W, 3)`` with targets (the gesture generator)."""

    def __init__(self, clips: np.ndarray, targets: Sequence[Any]) -> None:
        if clips.dtype != np.uint8 or clips.ndim != 5:
            raise TypeError("ArrayClips expects uint8 clips (N, L, H, W, 3)")
        self.clips = clips
        self.targets = list(targets)

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int) -> tuple[ArrayClip, Any]:
        return ArrayClip(self.clips[i]), self.targets[i]


class ClipList(Dataset):
    """Clips from disk (frame folders or video files) with their targets."""

    def __init__(self, clips: Sequence[FrameFiles | VideoFile], targets: Sequence[Any]) -> None:
        self.clips = list(clips)
        self.targets = list(targets)

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int) -> tuple[FrameFiles | VideoFile, Any]:
        return self.clips[i], self.targets[i]


# ---------------------------------------------------------------------------------------
# sampling and transforms


def segment_indices(length: int, frames: int, train: bool = False, jitter: float = 0.0,
                    generator: torch.Generator | None = None) -> list[int]:
    """TSN segment sampling: ``frames`` indices into a clip of ``length`` frames.

    Evaluation: the centre of each of ``frames`` equal segments. Training: a random
    offset in each segment, within a random window of ``1 - jitter`` to all of the clip.
    Indices never decrease, so temporal order is kept; short clips repeat frames.
    Randomness comes from torch's generator (seeded per DataLoader worker)."""
    if length < 1 or frames < 1:
        raise EdgekitError(f"cannot sample {frames} frames from a clip of {length}")
    if not train:
        span, start, offsets = float(length), 0.0, torch.full((frames,), 0.5, dtype=torch.float64)
    else:
        span = length * (1 - jitter * float(torch.rand((), generator=generator, dtype=torch.float64)))
        start = (length - span) * float(torch.rand((), generator=generator, dtype=torch.float64))
        offsets = torch.rand(frames, generator=generator, dtype=torch.float64)
    pos = start + (torch.arange(frames, dtype=torch.float64) + offsets) * (span / frames)
    return pos.floor().clamp(0, length - 1).long().tolist()


class ClipTransform:
    """clip -> float tensor ``(T, C, H, W)``: sample ``frames`` indices, read them, apply
    ``frame_transform`` (an image transform) to all frames at once with shared parameters."""

    def __init__(self, frames: int, frame_transform: Callable, train: bool = False,
                 jitter: float = DEFAULT_JITTER) -> None:
        if frames < 1:
            raise EdgekitError(f"frames must be a positive integer, got {frames}")
        if not 0 <= jitter < 1:
            raise EdgekitError(f"temporal jitter must be in [0, 1), got {jitter}")
        self.frames, self.frame_transform, self.train, self.jitter = frames, frame_transform, train, jitter

    def indices(self, length: int) -> list[int]:
        return segment_indices(length, self.frames, self.train, self.jitter if self.train else 0.0)

    def __call__(self, clip: Any) -> torch.Tensor:
        if isinstance(clip, np.ndarray):
            clip = ArrayClip(clip)
        frames = clip.read(self.indices(len(clip)))
        video = tv_tensors.Video(torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2))
        return self.frame_transform(video).as_subclass(torch.Tensor)


def is_clip(spec: dict[str, Any]) -> bool:
    """Whether ``spec`` describes clips ``(T, C, H, W)`` rather than single images."""
    return spec.get("kind") == "clip"


def frame_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """The per-frame image spec of a clip spec (shape ``[C, H, W]``): what one frame goes
    through, and the input of a streaming (one frame per call) model."""
    out = {k: v for k, v in spec.items() if k not in ("kind", "frames", "layout", "sampling")}
    out["shape"] = list(spec["shape"][1:])
    out["layout"] = "NCHW"
    return out


def with_frames(spec: dict[str, Any], frames: int) -> dict[str, Any]:
    """A copy of an image or clip spec that samples ``frames`` frames per clip (clip kind)."""
    from ..numbers import positive_int

    frames = positive_int("frames", frames)
    base = frame_spec(spec) if is_clip(spec) else dict(spec)
    if base.get("color", "RGB") != "RGB" or base["shape"][0] != 3:
        raise EdgekitError("clip inputs are RGB frames (3 channels)")
    return {**base, "kind": "clip", "frames": frames, "shape": [frames, *base["shape"]], "layout": "NTCHW",
            "sampling": "tsn"}


NO_FLIP = {"standard": "no_flip", "dldl": "dldl_no_flip"}


# ---------------------------------------------------------------------------------------
# videofolder:PATH


def _video_class_folder(root: Path) -> tuple[list[VideoFile], list[int], list[str], int]:
    files, targets, classes = files_by_class(root, VIDEO_EXTENSIONS, "video")
    counts = [probe_video(p) for p in files]
    bad = [p for p, n in zip(files, counts) if n == 0]
    if bad:
        log.warning("skipped %d unreadable or empty video(s), e.g. %s", len(bad), bad[0])
    keep = [(VideoFile(p, n), t) for p, n, t in zip(files, counts, targets) if n > 0]
    return [c for c, _ in keep], [t for _, t in keep], classes, len(bad)


def open_videofolder(root: Path, val: float, seed: int
                     ) -> tuple[Dataset, Dataset, list[str], int, dict[str, Any]]:
    """``videofolder:PATH``: one folder per class of video files (``train/`` + ``val/`` if
    both exist, else a seeded stratified split; :mod:`edgekit.data.folders`). Returns
    (train, val, labels, skipped, split record); unreadable or empty videos are skipped,
    counted and logged."""
    return open_class_folders(root, _video_class_folder, ClipList, val, seed, "video")

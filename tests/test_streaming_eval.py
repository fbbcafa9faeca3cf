"""Streaming evaluation (edgekit.evaluation.streaming, edgekit.evaluation.smoothing, ``edgekit eval --streaming``).

The smoother and the settle frame are checked on hand-made sequences; the evaluation on a
small causal tsm_compact_cnn (32 px, random weights made to give varied predictions) over
gesture clips, some cut to other lengths: its clip-end predictions, curves and settle
frames are recomputed from the causal offline model's per-frame logits on the same frames,
and they must not depend on how clips are batched or ordered (states reset per clip).
"""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from edgekit import create_model
from edgekit.checkpoint import Checkpoint
from edgekit.cli import main
from edgekit.data import load_data, make_input_spec
from edgekit.data.clips import ArrayClip, ClipList, segment_indices
from edgekit.errors import EdgekitError
from edgekit.evaluation import evaluate
from edgekit.evaluation.smoothing import NO_LABEL, accept_agreeing, smooth, window_sum
from edgekit.evaluation.streaming import StreamFrames, evaluate_streaming, resolve_stride, settle_frames, stream_indices
from test_temporal_models import randomise

SPEC = "gestures:n=66,classes=6"
FRAMES = 8


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Batches of a few 32 px frames: one thread is several times faster on a shared 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ---------------------------------------------------------------- smoother and settle frame, by hand

def test_window_sum_adds_the_last_k_frames() -> None:
    logits = torch.tensor([[[1.0, 0.0], [0.0, 2.0], [3.0, 0.0], [0.0, 4.0]]])
    assert window_sum(logits, 1).tolist() == logits.tolist()
    assert window_sum(logits, 2).tolist() == [[[1, 0], [1, 2], [3, 2], [3, 4]]]
    assert window_sum(logits, 3).tolist() == [[[1, 0], [1, 2], [4, 2], [3, 6]]]
    assert window_sum(logits, 12).tolist() == [[[1, 0], [1, 2], [4, 2], [4, 6]]]  # longer than the stream


@pytest.mark.parametrize("candidates, agree, shown", [
    ([0, 1, 1, 2, 1, 1], 2, [NO_LABEL, NO_LABEL, 1, 1, 1, 1]),
    ([0, 0, 1, 2, 2, 1], 2, [NO_LABEL, 0, 0, 0, 2, 2]),
    ([3, 3, 3, 1, 1, 0], 2, [NO_LABEL, 3, 3, 3, 1, 1]),
    ([0, 1, 2, 0, 1, 2], 2, [NO_LABEL] * 6),  # never two agreeing predictions
    ([0, 0, 1, 1, 0, 0, 0], 3, [NO_LABEL, NO_LABEL, NO_LABEL, NO_LABEL, NO_LABEL, NO_LABEL, 0]),
    ([0, 1, 1, 2], 1, [0, 1, 1, 2]),  # agree=1: every candidate at once
])
def test_a_new_label_is_accepted_after_agreeing_predictions(candidates, agree, shown) -> None:
    c = torch.tensor([candidates, candidates[::-1]])
    out = accept_agreeing(c, agree)
    assert out[0].tolist() == shown
    assert out[1].tolist() == accept_agreeing(c[1:], agree)[0].tolist()  # streams are independent


def test_smoother_ignores_a_one_frame_spike_and_follows_a_real_change() -> None:
    frames = [[1.0, 0.0]] * 4 + [[0.0, 1.5]] + [[1.0, 0.0]] * 3 + [[0.0, 3.0]] * 4
    logits = torch.tensor([frames])
    assert logits.argmax(-1)[0].tolist() == [0, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1]  # the raw argmax flickers
    # window 3: the spike's sums are (2, 1.5) at frames 4-6 (still 0); from frame 8 on (2,3) (1,6) (0,9):
    # candidate 1 from frame 8, accepted at frame 9 (two agreeing)
    assert smooth(logits, window=3, agree=2)[0].tolist() == [NO_LABEL, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1]
    assert smooth(logits, window=1, agree=2)[0].tolist() == [NO_LABEL, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1]
    assert smooth(logits, window=1, agree=1)[0].tolist() == logits.argmax(-1)[0].tolist()


def test_settle_frame_is_the_first_frame_after_which_the_label_never_changes() -> None:
    labels = torch.tensor([[0, 0, 0, 0], [1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1], [2, 2, 1, 2],
                           [NO_LABEL, 3, 3, 3]])
    assert settle_frames(labels).tolist() == [0, 1, 2, 3, 3, 1]


def test_stream_frames_end_at_the_clip_end_and_auto_stride_is_the_segment_spacing() -> None:
    assert stream_indices(16, 2) == segment_indices(16, 8)  # auto on gestures: the offline frames
    assert stream_indices(7, 3) == [0, 3, 6] and stream_indices(5, 1) == [0, 1, 2, 3, 4]
    assert stream_indices(3, 8) == [2]
    assert resolve_stride("auto", [16, 16, 40], 8) == 2 and resolve_stride("auto", [5, 3], 8) == 1
    assert resolve_stride("3", [16], 8) == 3
    for bad in (0, -1, "0", "x", 1.5):
        with pytest.raises(EdgekitError):
            resolve_stride(bad, [16], 8)


# ---------------------------------------------------------------- evaluation on a small causal TSM

def _checkpoint(arch: str, bundle, shift: str | None = "causal", seed: int = 0) -> Checkpoint:
    kwargs = {"num_classes": len(bundle.labels), "frames": FRAMES, "small_input": True}
    if shift:
        kwargs["shift"] = shift
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = create_model(arch, **kwargs)
    if shift == "causal":
        randomise(model, seed)
    return Checkpoint(arch=arch, arch_kwargs=kwargs, state_dict=model.state_dict(), task="clip_classify",
                      labels=bundle.labels, input_spec=make_input_spec(32, frames=FRAMES), data=bundle.record)


@pytest.fixture(scope="module")
def bundle():
    return load_data(SPEC)


@pytest.fixture(scope="module")
def ckpt(bundle) -> Checkpoint:
    return _checkpoint("tsm_compact_cnn", bundle)


@pytest.fixture(scope="module")
def cut(bundle):
    """The validation clips cut to varied lengths (16 down to 3 frames): unequal batches."""
    lengths = [16, 11, 7, 16, 3, 9, 12, 16, 5, 10, 14, 8, 16, 6]
    clips = [ArrayClip(bundle.val[i][0].frames[:lengths[i % len(lengths)]]) for i in range(len(bundle.val))]
    return replace(bundle, spec="gestures-cut", val=ClipList(clips, [bundle.val[i][1] for i in range(len(bundle.val))]))


def _offline_per_frame(ckpt: Checkpoint, data, stride: int) -> list[torch.Tensor]:
    """Per-frame argmax of the causal offline clip model, each clip alone, on the streamed frames."""
    transform = StreamFrames(ckpt.input_spec, stride)
    with torch.no_grad():
        return [ckpt.model.frame_logits(transform(data.val[i][0])[None])[0] for i in range(len(data.val))]


def test_streaming_matches_the_causal_offline_model_frame_by_frame(ckpt, cut) -> None:
    res = evaluate_streaming(ckpt, cut, stride=2, bins=4, batch_size=3, device="cpu")
    logits = _offline_per_frame(ckpt, cut, 2)
    preds = [lg.argmax(-1) for lg in logits]
    targets = [int(cut.val[i][1]) for i in range(len(cut.val))]
    rows = res["per_clip"]
    assert [r["processed"] for r in rows] == [len(p) for p in preds]
    assert len({r["processed"] for r in rows}) > 3  # unequal lengths, several batches
    assert [r["end"] for r in rows] == [int(p[-1]) for p in preds]
    assert len({r["end"] for r in rows}) > 1  # varied predictions: a leaked state could show
    assert [r["smoothed_end"] for r in rows] == [int(smooth(lg[None], 12, 2)[0, -1]) for lg in logits]
    assert [r["settle"] for r in rows] == [int(settle_frames(p[None])[0]) for p in preds]
    assert res["equivalence"]["max_abs_error"] <= 1e-4 and res["equivalence"]["argmax_agreement"] == 1.0
    hits = [(p == t).numpy() for p, t in zip(preds, targets)]
    assert res["online"]["end"] == pytest.approx(100 * np.mean([h[-1] for h in hits]))
    assert res["by_frame"]["n"] == [sum(len(h) > t for h in hits) for t in range(max(map(len, hits)))]
    assert res["by_frame"]["online"] == pytest.approx(
        [100 * np.mean([h[t] for h in hits if len(h) > t]) for t in range(max(map(len, hits)))])
    # position q: the last frame processed once q of the clip is seen, frame ceil(q * L) - 1
    assert res["curve"]["position"] == [0.25, 0.5, 0.75, 1.0]
    expected = [100 * np.mean([h[int(np.ceil(q * len(h))) - 1] for h in hits]) for q in (0.25, 0.5, 0.75, 1.0)]
    assert res["curve"]["online"] == pytest.approx(expected)
    assert res["curve"]["online"][-1] == pytest.approx(res["online"]["end"])
    assert res["curve"]["smoothed"][-1] == pytest.approx(res["smoothed"]["end"])
    settle = np.array([r["settle"] for r in rows], float)
    assert res["online"]["settle"]["mean"] == pytest.approx(settle.mean())
    assert res["online"]["settle"]["mean_fraction"] == pytest.approx(
        np.mean((settle + 1) / [r["processed"] for r in rows]))


def test_states_reset_per_clip_whatever_the_batching_or_order(ckpt, cut) -> None:
    base = evaluate_streaming(ckpt, cut, stride=1, batch_size=64, device="cpu")["per_clip"]
    pairs = evaluate_streaming(ckpt, cut, stride=1, batch_size=2, device="cpu")
    assert pairs["per_clip"] == base
    # the offline reference of clips longer than T runs a clip at a time here: still equivalent
    assert pairs["equivalence"]["max_abs_error"] <= 1e-4 and pairs["equivalence"]["argmax_agreement"] == 1.0
    n = len(cut.val)
    order = list(range(n))[::-1]
    reversed_val = ClipList([cut.val[i][0] for i in order], [cut.val[i][1] for i in order])
    rev = evaluate_streaming(ckpt, replace(cut, val=reversed_val), stride=1, batch_size=2, device="cpu")["per_clip"]
    strip = [{k: v for k, v in r.items() if k != "index"} for r in base]
    assert [{k: v for k, v in r.items() if k != "index"} for r in rev][::-1] == strip


def test_auto_stride_offline_accuracy_and_whole_clips(ckpt, bundle) -> None:
    res = evaluate_streaming(ckpt, device="cpu")  # its own data and split
    assert res["stride"] == 2 and res["stride_auto"] and res["clips"] == len(bundle.val)
    assert res["processed_frames"] == {"min": 8, "median": 8, "max": 8, "total": 8 * len(bundle.val)}
    assert res["offline"]["top1"] == evaluate(ckpt)["top1"] and res["offline"]["frames"] == FRAMES
    assert res["states"] == 3 and "first frame of every clip" in res["reset"]
    assert sum(c["n"] for c in res["by_class"].values()) == res["clips"]


# ---------------------------------------------------------------- CLI and bad input

def test_cli_prints_the_table_and_curve_and_writes_json(ckpt, tmp_path: Path) -> None:
    path = ckpt.save(tmp_path / "m.ckpt")
    runner = CliRunner()
    res = runner.invoke(main, ["eval", str(path), "--streaming", "--device", "cpu", "--window", "4",
                               "--json", str(tmp_path / "s.json")])
    assert res.exit_code == 0, res.output
    for text in ("offline clip model", "online, per-frame argmax", "smoothed (K=4, 2 agreeing)", "equivalence",
                 "accuracy over the clip", "stride 2 (auto"):
        assert text in res.stdout
    saved = json.loads((tmp_path / "s.json").read_text())
    assert len(saved["curve"]["online"]) == 10 and saved["smoothed"]["window"] == 4
    assert len(saved["per_clip"]) == saved["clips"]
    printed = runner.invoke(main, ["eval", str(path), "--streaming", "--device", "cpu", "--stride", "1", "--json"])
    assert printed.exit_code == 0 and json.loads(printed.stdout)["stride"] == 1
    again = runner.invoke(main, ["eval", str(path), "--streaming", "--json", str(tmp_path / "s.json")])
    assert again.exit_code == 2 and "--force" in again.stderr


def _one_line(res, text: str) -> None:
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert res.exit_code == 2 and len(lines) == 1 and text in lines[0], res.stderr


def test_bad_input_is_one_line(ckpt, bundle, tmp_path: Path) -> None:
    path = str(ckpt.save(tmp_path / "m.ckpt"))
    bi = str(_checkpoint("tsm_compact_cnn", bundle, shift="bidirectional").save(tmp_path / "bi.ckpt"))
    tsn = str(_checkpoint("tsn_compact_cnn", bundle, shift=None).save(tmp_path / "tsn.ckpt"))
    image = Checkpoint(arch="compact_cnn", arch_kwargs={"num_classes": 4},
                       state_dict=create_model("compact_cnn", num_classes=4).state_dict(),
                       labels=list("abcd"), input_spec=make_input_spec(32), data={"spec": "synthetic"})
    img = str(image.save(tmp_path / "img.ckpt"))
    runner = CliRunner()
    for args, text in [
        ([bi, "--streaming"], "bidirectional TSM reads the next frame"),
        ([tsn, "--streaming"], "only a causal TSM"),
        ([img, "--streaming"], "needs a clip model checkpoint"),
        ([path, "--streaming", "--data", "synthetic"], "not clips"),
        ([path, "--streaming", "--window", "0"], "--window"),
        ([path, "--streaming", "--agree", "-1"], "--agree"),
        ([path, "--streaming", "--bins", "0"], "--bins"),
        ([path, "--streaming", "--stride", "0"], "stride"),
        ([path, "--streaming", "--stride", "two"], "stride"),
        ([path, "--window", "5"], "--streaming"),
        ([path, "--streaming", "--no-flip"], "--flip"),
    ]:
        _one_line(runner.invoke(main, ["eval", *args]), text)
    for bad in ({"window": 0}, {"agree": 0}, {"bins": -2}, {"batch_size": 0}, {"stride": 0}, {"split": "test"}):
        with pytest.raises(EdgekitError):
            evaluate_streaming(ckpt, **bad)

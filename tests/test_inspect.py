"""``edgekit info`` and ``edgekit zoo`` on tabular nets: the standardisation shown once, and nets
whose size comes from their data said to need it instead of listed with input 0."""
from __future__ import annotations

from pathlib import Path

import edgekit
from edgekit.evaluation.inspect import NEEDS_DATA, checkpoint_summary, format_summary, zoo_rows


def test_info_shows_a_tabular_checkpoint_standardisation_once(tmp_path: Path) -> None:
    edgekit.train("mlp_tabular", "sklearn:iris", tmp_path / "iris.pt", epochs=1, precise_bn=0)
    summary = checkpoint_summary(tmp_path / "iris.pt")
    assert summary["arch_kwargs"]["mean"] == summary["input_spec"]["mean"]  # the data keeps both
    text = format_summary(summary)
    mean = str(summary["input_spec"]["mean"])
    assert text.count(mean) == 1 and text.count(str(summary["input_spec"]["std"])) == 1, text
    assert "in_features': 4" in text and "petal width (cm)" in text and "resize" not in text


def test_zoo_says_tabular_nets_need_data() -> None:
    rows = {r["name"]: r for r in zoo_rows("tabular", macs=False)}
    assert set(rows) == {"mlp_tabular", "nfl_tabular"}
    for row in rows.values():
        assert row["input"] == "table" and row["note"] == NEEDS_DATA and "error" not in row
    compact = zoo_rows("compact_cnn_s", macs=False)[0]
    assert compact["input"] == 32 and compact["params"] > 0 and "note" not in compact

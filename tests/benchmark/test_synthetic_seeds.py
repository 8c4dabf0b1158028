"""``taskfuse benchmark synthetic --combine``: runs that differ only in seed summarised as mean ± sd per row and a
paired-by-seed task-guided minus fusion-only difference with the smallest difference that many seeds detect."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from taskfuse.benchmark.report import seed_summary
from taskfuse.cli.main import main
from taskfuse.errors import TaskfuseError


def fake_run(out: Path, seed: int, scores: dict[str, float], scale: str = "small") -> Path:
    """A benchmark folder with row files holding only the segmentation headline (fractions)."""
    rows = list(scores)
    (out / "rows").mkdir(parents=True)
    (out / "benchmark.json").write_text(json.dumps({"scale": scale, "seed": seed, "detection": False, "rows": rows}))
    for name, miou in scores.items():
        record = {"row": name, "kind": "x", "segmentation": {"result": {"mIoU": miou}}}
        (out / "rows" / f"{name}.json").write_text(json.dumps(record))
    return out


def test_seeds_summarise_rows_and_paired_differences(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs = [
        fake_run(tmp_path / f"s{s}", s, {"ir": 0.20 + d, "seafusion-fusion-only": 0.21, "seafusion-task-guided": t})
        for s, d, t in ((0, 0.0, 0.22), (1, 0.01, 0.24), (2, 0.02, 0.23))
    ]
    summary = seed_summary(runs)
    ir = next(r for r in summary["rows"] if r["row"] == "ir")
    assert ir["seeds"] == 3 and ir["mIoU"] == pytest.approx(21.0) and ir["mIoU_sd"] == pytest.approx(1.0)
    g = summary["guidance"]["mIoU seafusion"]
    assert (g["mean"], g["sd"], g["seeds"]) == pytest.approx((2.0, 1.0, 3))
    assert g["detectable"] == pytest.approx(2.8016 / math.sqrt(3), rel=1e-4)
    assert main(["benchmark", "synthetic", "--combine", *map(str, runs), "--out", str(tmp_path / "all")]) == 0
    assert "mIoU seafusion: +2.00 ± 1.00 over 3 seeds" in capsys.readouterr().out
    assert (tmp_path / "all" / "seeds.json").is_file()
    other = fake_run(tmp_path / "full", 3, {"ir": 0.3}, scale="full")
    with pytest.raises(TaskfuseError, match="one scale and detection setting with distinct seeds"):
        seed_summary([runs[0], other])
    with pytest.raises(TaskfuseError, match="distinct seeds"):
        seed_summary([runs[0], runs[0]])

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

from taskfuse.cli.main import main
from taskfuse.data.io import read_ir, read_vi, write_image
from taskfuse.metrics.fusion import FusionMetrics

METRICS = ["EN", "SD", "SF", "AG"]


def _folders(root: Path, names: list[str]) -> dict[str, Path]:
    """IR (.png), VIS (.jpg) and two methods' fused images (.png): ``sharp`` and a flat ``grey``."""
    for n in names:
        ir, vi = torch.rand(1, 20, 28), torch.rand(3, 20, 28)
        write_image(root / "ir" / f"{n}.png", ir)
        write_image(root / "vi" / f"{n}.jpg", vi)
        write_image(root / "sharp" / f"{n}.png", (0.5 * ir + 0.5 * vi).clamp(0, 1))
        write_image(root / "grey" / f"{n}.png", torch.full((3, 20, 28), 0.5) + 0.01 * torch.rand(3, 20, 28))
    return {k: root / k for k in ("ir", "vi", "sharp", "grey")}


def _args(d: dict[str, Path], out: Path) -> list[str]:
    return ["evaluate", "fusion", "--ir", str(d["ir"]), "--vi", str(d["vi"]),
            "--fused", f"sharp={d['sharp']}", str(d["grey"]), "--metrics", *METRICS,
            "--device", "cpu", "--out", str(out)]  # fmt: skip


def test_two_methods_end_to_end(tmp_path: Path, capsys) -> None:
    d = _folders(tmp_path, ["a", "b", "c"])
    out = tmp_path / "report"
    assert main(_args(d, out)) == 0
    printed = capsys.readouterr().out
    assert "| Method | EN ↑ | SD ↑ | SF ↑ | AG ↑ |" in printed and "| sharp | **" in printed

    names = {"per_image.csv", "summary.md", "summary.json", *(f"cdf_{m}.png" for m in METRICS)}
    assert {p.name for p in out.iterdir()} == names
    with Image.open(out / "cdf_EN.png") as im:
        assert im.format == "PNG"

    rows = list(csv.DictReader((out / "per_image.csv").open()))
    assert [(r["method"], r["image"]) for r in rows] == [(m, n) for m in ("sharp", "grey") for n in "abc"]
    meter = FusionMetrics(METRICS)
    fused_b = read_vi(d["sharp"] / "b.png")[None]
    meter.update(fused_b, read_ir(d["ir"] / "b.png")[None], read_vi(d["vi"] / "b.jpg")[None])
    expected = meter.compute()
    for m in METRICS:
        assert float(rows[1][m]) == pytest.approx(float(expected[m][0]), rel=1e-12)

    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["methods"]) == ["sharp", "grey"] and summary["images"] == 3
    assert summary["best"]["SD"] == ["sharp"] and summary["second"]["SD"] == ["grey"]


def test_missing_fused_image_is_a_clear_error(tmp_path: Path, capsys) -> None:
    d = _folders(tmp_path, ["a", "b", "c"])
    (d["grey"] / "b.png").unlink()
    assert main(_args(d, tmp_path / "report")) == 2
    err = capsys.readouterr().err
    assert "no fused image for 1 of 3 pairs: b (from b.png + b.jpg)" in err
    assert str(d["grey"]) in err and "Fuse those pairs" in err
    assert not (tmp_path / "report").exists()


def test_unknown_metric_and_bad_fused_argument(tmp_path: Path, capsys) -> None:
    d = _folders(tmp_path, ["a"])
    args = _args(d, tmp_path / "report")
    args[args.index("EN")] = "ENN"
    assert main(args) == 2
    assert "unknown fusion metric 'ENN'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["evaluate", "fusion", "--ir", "x", "--vi", "y", "--fused", "=z", "--out", "o"])
    assert e.value.code == 2


def test_lower_case_metric_names_and_fused_size_mismatch(tmp_path: Path, capsys) -> None:
    d = _folders(tmp_path, ["a"])
    args = _args(d, tmp_path / "report")
    args[args.index("EN")] = "en"
    assert main(args) == 0
    assert "| EN ↑ |" in capsys.readouterr().out
    shutil.rmtree(d["grey"])
    write_image(d["grey"] / "a.png", torch.rand(3, 10, 10))
    assert main(args) == 2
    assert "fused images must keep the source size" in capsys.readouterr().err

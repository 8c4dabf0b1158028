"""``taskfuse datasets list`` and ``taskfuse datasets check`` on a tiny MSRS-layout folder."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest

from taskfuse.cli import datasets
from taskfuse.cli.main import main
from taskfuse.data.io import write_image
from taskfuse.errors import TaskfuseError


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="taskfuse")
    datasets.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.run(args)


def msrs(root: Path, bad_value: int | None = None) -> Path:
    rng = np.random.default_rng(1)
    for n in ("00001D", "00002N", "00003N"):
        write_image(root / f"train/ir/{n}.png", rng.integers(0, 256, (4, 6), dtype=np.uint8))
        write_image(root / f"train/vi/{n}.png", rng.integers(0, 256, (4, 6, 3), dtype=np.uint8))
        lab = rng.integers(0, 9, (4, 6), dtype=np.uint8)
        if bad_value is not None and n != "00001D":
            lab[0, 0] = bad_value
        write_image(root / f"train/Segmentation_labels/{n}.png", lab)
    return root


def test_list_prints_every_layout(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["datasets", "list"]) == 0
    out = capsys.readouterr().out
    for name in ("msrs", "mfnet", "fmb", "pst900", "m3fd", "llvip", "paired", "coco_keypoints"):
        assert f"\n{name} " in out


def test_check_clean_exits_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = run(["datasets", "check", str(msrs(tmp_path)), "--layout", "msrs", "--quiet"])
    assert code == 0
    assert "ok: 3 samples" in capsys.readouterr().out


def test_check_bad_label_values_exits_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = run(["datasets", "check", str(msrs(tmp_path, bad_value=42)), "--layout", "msrs", "--split", "train"])
    out = capsys.readouterr().out
    assert code == 1
    assert "label values out of range: 2" in out and "values [42]" in out and "00002N.png" in out


def test_check_wrong_folder_exits_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = run(["datasets", "check", str(msrs(tmp_path)), "--layout", "fmb", "--quiet"])
    assert code == 1
    assert "layout: 1" in capsys.readouterr().out


def test_check_unknown_layout_raises(tmp_path: Path) -> None:
    with pytest.raises(TaskfuseError, match="did you mean 'msrs'"):
        run(["datasets", "check", str(tmp_path), "--layout", "msr"])


def test_check_decodes_every_file_and_finds_what_fuse_rejects(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A JPEG cut short in its data keeps a readable header: only decoding finds it, as ``taskfuse fuse`` does.
    A false-colour infrared image decodes but is refused as infrared."""
    root = msrs(tmp_path)
    rng = np.random.default_rng(2)
    for n in ("00001D", "00002N", "00003N"):
        write_image(root / f"train/ir/{n}.png", rng.integers(0, 256, (64, 64), dtype=np.uint8))
        write_image(root / f"train/Segmentation_labels/{n}.png", np.zeros((64, 64), np.uint8))
    cut = root / "train/vi/00001D.jpg"
    write_image(cut, rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    (root / "train/vi/00001D.png").unlink()
    cut.write_bytes(cut.read_bytes()[:-1500])
    write_image(root / "train/vi/00002N.png", rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    write_image(root / "train/vi/00003N.png", rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    write_image(root / "train/ir/00002N.png", rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    assert run(["datasets", "check", str(root), "--layout", "msrs", "--quiet"]) == 1
    out = capsys.readouterr().out
    assert "unreadable files: 2" in out
    assert "00001D.jpg: not a readable image (image file is truncated" in out
    assert "00002N.png: a false-colour infrared image" in out
    fuse = ["fuse", "--ir", str(root / "train/ir"), "--vi", str(root / "train/vi"), "--out", str(tmp_path / "o")]
    assert main([*fuse, "--keep-going"]) == 1
    assert "2 pair(s) failed" in capsys.readouterr().err

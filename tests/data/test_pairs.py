from __future__ import annotations

from pathlib import Path

import pytest
import torch

from taskfuse.data.io import write_image
from taskfuse.data.pairs import check_sizes, find_pairs
from taskfuse.errors import TaskfuseError


def _folder(root: Path, names: list[str], size: tuple[int, int] = (8, 10), ext: str = ".png") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for n in names:
        write_image(root / f"{n}{ext}", torch.rand(1, *size))
    return root


def test_pairs_by_stem_across_extensions(tmp_path: Path) -> None:
    ir = _folder(tmp_path / "ir", ["a", "b"])
    vi = _folder(tmp_path / "vi", ["a", "b"], ext=".jpg")
    pairs = find_pairs(ir, vi)
    assert [p.name for p in pairs] == ["a", "b"]
    assert pairs[0].vi.suffix == ".jpg"
    assert find_pairs(ir / "a.png", vi / "b.jpg")[0].name == "a"


def test_missing_partners_are_all_named(tmp_path: Path) -> None:
    ir = _folder(tmp_path / "ir", ["a", "b", "c"])
    vi = _folder(tmp_path / "vi", ["a", "d"])
    with pytest.raises(TaskfuseError) as e:
        find_pairs(ir, vi)
    msg = str(e.value)
    assert "b, c" in msg and "d" in msg and "--skip-unpaired" in msg
    assert [p.name for p in find_pairs(ir, vi, skip_unpaired=True)] == ["a"]


def test_empty_missing_and_mixed_inputs(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    vi = _folder(tmp_path / "vi", ["a"])
    with pytest.raises(TaskfuseError, match="empty: no images found"):
        find_pairs(tmp_path / "empty", vi)
    with pytest.raises(TaskfuseError, match="nowhere: no such file or folder"):
        find_pairs(tmp_path / "nowhere", vi)
    with pytest.raises(TaskfuseError, match="two files or two folders"):
        find_pairs(vi / "a.png", vi)


def test_clashing_stems_are_refused(tmp_path: Path) -> None:
    ir = _folder(tmp_path / "ir", ["a"])
    _folder(ir, ["a"], ext=".jpg")
    with pytest.raises(TaskfuseError, match="a.jpg / a.png|a.png / a.jpg"):
        find_pairs(ir, ir)


def test_size_mismatch_names_pair_and_fix(tmp_path: Path) -> None:
    ir = _folder(tmp_path / "ir", ["a", "b"])
    vi = _folder(tmp_path / "vi", ["a"])
    _folder(vi, ["b"], size=(9, 10))
    pairs = find_pairs(ir, vi)
    with pytest.raises(TaskfuseError, match=r"b \(ir 10x8, vi 10x9\).*--resize vi"):
        check_sizes(pairs)
    check_sizes(pairs, "vi")

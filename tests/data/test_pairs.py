from __future__ import annotations

from pathlib import Path

import pytest
import torch

from taskfuse.data.io import write_image
from taskfuse.data.pairs import apply_pattern, check_output, check_sizes, find_pairs
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


def test_name_patterns_pair_files_of_one_folder(tmp_path: Path) -> None:
    scene = _folder(tmp_path / "scene", ["IR_12_g", "IR_7_g"])
    _folder(scene, ["VIS_12_r", "VIS_7_r"], ext=".bmp")
    pairs = find_pairs(scene, scene, ir_pattern="IR_*_g", vi_pattern="VIS_*_r")
    assert [(p.name, p.ir.name, p.vi.name) for p in pairs] == [
        ("12", "IR_12_g.png", "VIS_12_r.bmp"),
        ("7", "IR_7_g.png", "VIS_7_r.bmp"),
    ]
    with pytest.raises(TaskfuseError, match="2 file.s. would be both infrared and visible"):
        find_pairs(scene, scene, vi_pattern="IR_*")
    with pytest.raises(TaskfuseError, match="--vi-pattern 'VIS' must hold exactly one"):
        find_pairs(scene, scene, ir_pattern="IR_*", vi_pattern="VIS")
    with pytest.raises(TaskfuseError, match="none of its 4 images matches the name pattern 'ir_\\*'"):
        find_pairs(scene, scene, ir_pattern="ir_*", vi_pattern="VIS_*")
    assert find_pairs(scene / "IR_7_g.png", scene / "VIS_7_r.bmp", ir_pattern="IR_*_g")[0].name == "7"


def test_recursive_listing_keys_by_relative_path(tmp_path: Path) -> None:
    _folder(tmp_path / "ir" / "day", ["a"])
    _folder(tmp_path / "ir" / "night", ["a"])
    _folder(tmp_path / "ir" / ".cache", ["a"])
    _folder(tmp_path / "vi" / "day", ["a"], ext=".jpg")
    _folder(tmp_path / "vi" / "night", ["a"])
    pairs = find_pairs(tmp_path / "ir", tmp_path / "vi", recursive=True)
    assert [p.name for p in pairs] == ["day/a", "night/a"]
    with pytest.raises(TaskfuseError, match="no images found .* or pass --recursive"):
        find_pairs(tmp_path / "ir", tmp_path / "vi")
    assert apply_pattern("day/a", "Fuse*") == "day/Fusea" and apply_pattern("a", "*_f") == "a_f"


@pytest.mark.parametrize(
    ("out", "relation"),
    [("ir", "is the input folder"), ("ir/x", "lies inside the input folder"), (".", "contains the input folder")],
)
def test_output_overlapping_an_input_is_refused(tmp_path: Path, out: str, relation: str) -> None:
    ir = _folder(tmp_path / "ir", ["a"])
    vi = _folder(tmp_path / "vi", ["a"])
    with pytest.raises(TaskfuseError, match=f"--out .* {relation}"):
        check_output(tmp_path / out, [ir, vi])
    check_output(tmp_path / "out", [ir, vi])
    check_output(ir / "x", [ir / "a.png"], inside=True)
    (tmp_path / "link").symlink_to(ir)
    with pytest.raises(TaskfuseError, match="link is the input folder"):
        check_output(tmp_path / "link", [ir, vi])

"""The ``msrs_det`` layout and YOLO text boxes: files written in the published layout (two spaces between fields,
empty files, malformed lines), the split fixed by name, YOLO boxes in the ``paired`` and ``msrs`` layouts, and
the real MSRS detection labels when they are beside the project."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from taskfuse.data.check import BOX_CLASS, BOX_OUTSIDE, UNREADABLE, check_dataset
from taskfuse.data.classes import MSRS_DET
from taskfuse.data.datasets import open_dataset
from taskfuse.data.datasets.msrs_det import condition, split_of
from taskfuse.data.io import write_image
from taskfuse.errors import TaskfuseError

H, W = 48, 64
RNG = np.random.default_rng(0)


def write_pair(root: Path, name: str, boxes: dict[str, str], ir: str = "ir", vi: str = "vi") -> None:
    write_image(root / ir / f"{name}.png", RNG.integers(0, 256, (H, W), dtype=np.uint8))
    write_image(root / vi / f"{name}.png", RNG.integers(0, 256, (H, W, 3), dtype=np.uint8))
    for folder, text in boxes.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        (root / folder / f"{name}.txt").write_text(text)


def names_in(split: str, count: int, suffix: str) -> list[str]:
    """The first ``count`` five-digit names ending in ``suffix`` that ``split_of`` puts into ``split``."""
    found = []
    for i in range(10_000):
        name = f"{i:05d}{suffix}"
        if split_of(name) == split:
            found.append(name)
        if len(found) == count:
            return found
    raise AssertionError("no such names")


def msrs_det(root: Path, names: list[str]) -> Path:
    (root / "labels").mkdir(parents=True, exist_ok=True)
    (root / "labels/classes.txt").write_text("0 person\n1 bicycle\n2 car\n")
    for i, name in enumerate(names):
        fusion = "0  0.5  0.5  0.25  0.5  \n2 0.125 0.25 0.25 0.5\n" if i == 0 else ""
        other = {"labels/infrared": "1 0.5 0.5 0.5 0.5\n", "labels/visible": ""}
        write_pair(root, name, {"labels/fusion": fusion, **other})
    return root


def test_reads_yolo_boxes_in_pixels_with_double_spaces_and_empty_files(tmp_path: Path) -> None:
    names = names_in("train", 2, "D") + names_in("val", 1, "N")
    ds = open_dataset("msrs_det", msrs_det(tmp_path, names))
    assert (ds.split, len(ds), ds.classes) == ("all", 3, MSRS_DET)
    first = ds[[r.name for r in ds.records].index(names[0])]
    expected = torch.tensor([[0.0, 24.0, 12.0, 40.0, 36.0], [2.0, 0.0, 0.0, 16.0, 24.0]])
    torch.testing.assert_close(first["boxes"], expected)
    empty = ds[[r.name for r in ds.records].index(names[1])]
    assert empty["boxes"].shape == (0, 5)
    infrared = open_dataset("msrs_det", tmp_path, labels="infrared")[0]
    torch.testing.assert_close(infrared["boxes"], torch.tensor([[1.0, 16.0, 12.0, 48.0, 36.0]]))
    assert "boxes" not in open_dataset("msrs_det", tmp_path, labels=False)[0]
    assert check_dataset(tmp_path, "msrs_det", progress=False).ok


def test_split_is_fixed_by_name_disjoint_and_unmoved_by_new_pairs(tmp_path: Path) -> None:
    train = names_in("train", 3, "D") + names_in("train", 2, "N")
    val = names_in("val", 1, "D") + names_in("val", 1, "N")
    msrs_det(tmp_path, train + val)
    read = {s: {r.name for r in open_dataset("msrs_det", tmp_path, s).records} for s in ("train", "val", "all")}
    assert read["train"] == set(train) and read["val"] == set(val) and read["all"] == set(train + val)
    assert {condition(n) for n in read["val"]} == {"day", "night"}
    write_pair(tmp_path, "99999D", {"labels/fusion": "", "labels/infrared": "", "labels/visible": ""})
    again = {r.name for r in open_dataset("msrs_det", tmp_path, "train").records} - {"99999D"}
    assert again == read["train"]
    with pytest.raises(TaskfuseError, match="no split 'test'; available: train, val, all"):
        open_dataset("msrs_det", tmp_path, "test")


def test_malformed_lines_name_file_and_line(tmp_path: Path) -> None:
    name = names_in("train", 1, "D")[0]
    msrs_det(tmp_path, [name])
    path = tmp_path / "labels/fusion" / f"{name}.txt"
    cases = [("0 0.5 0.5 0.2\n", 1), ("\n0 0.5 0.5 0.2 0.2\nperson 0.5 0.5 0.2 0.2\n", 3), ("0 0.5 0.5 0.2 x", 1)]
    for text, line in cases:
        path.write_text(text)
        with pytest.raises(TaskfuseError, match=rf"{name}\.txt, line {line}: .*not 'class cx cy w h'"):
            open_dataset("msrs_det", tmp_path)[0]
    report = check_dataset(tmp_path, "msrs_det", progress=False)
    assert "line 1" in report.problems[UNREADABLE][0]


def test_unknown_classes_and_boxes_outside_are_reported(tmp_path: Path) -> None:
    names = names_in("train", 2, "D")
    msrs_det(tmp_path, names)
    (tmp_path / "labels/fusion" / f"{names[0]}.txt").write_text("7 0.5 0.5 0.2 0.2\n")
    (tmp_path / "labels/fusion" / f"{names[1]}.txt").write_text("0 0.9 0.5 0.4 0.2\n2 0.9995 0.5 0.001 0.2\n")
    with pytest.raises(TaskfuseError, match=r"unknown class\(es\) 7; msrs_det classes are person, bicycle, car"):
        open_dataset("msrs_det", tmp_path)[0]
    report = check_dataset(tmp_path, "msrs_det", progress=False)
    assert len(report.problems[BOX_CLASS]) == 1 and len(report.problems[BOX_OUTSIDE]) == 1
    assert "[44.8, 19.2, 70.4, 28.8]" in report.problems[BOX_OUTSIDE][0]
    clipped = open_dataset("msrs_det", tmp_path)[1]["boxes"][1]
    assert float(clipped[3]) == W


def test_bad_options_and_class_lists(tmp_path: Path) -> None:
    msrs_det(tmp_path, names_in("train", 1, "D"))
    with pytest.raises(TaskfuseError, match="labels='thermal': choose one of fusion, infrared, visible"):
        open_dataset("msrs_det", tmp_path, labels="thermal")
    (tmp_path / "labels/classes.txt").write_text("car\nperson\nbicycle\n")
    with pytest.raises(TaskfuseError, match="classes.txt lists car, person, bicycle; msrs_det boxes are person"):
        open_dataset("msrs_det", tmp_path)
    (tmp_path / "labels/classes.txt").write_text("0 person\n2 car\n")
    with pytest.raises(TaskfuseError, match="line 2: class index 2 where 1 was expected"):
        open_dataset("msrs_det", tmp_path)


def test_paired_and_msrs_layouts_accept_yolo_folders(tmp_path: Path) -> None:
    write_pair(tmp_path / "p", "a", {"boxes": "1 0.5 0.5 0.5 0.5\n"})
    with pytest.raises(TaskfuseError, match="need a classes.txt"):
        open_dataset("paired", tmp_path / "p", yolo_labels="boxes")
    (tmp_path / "p/boxes/classes.txt").write_text("dog\ncat\n")
    paired = open_dataset("paired", tmp_path / "p", yolo_labels="boxes")
    assert paired.classes.names == ("dog", "cat") and paired.annotations == "boxes"
    torch.testing.assert_close(paired[0]["boxes"], torch.tensor([[1.0, 16.0, 12.0, 48.0, 36.0]]))
    assert "boxes" not in open_dataset("paired", tmp_path / "p")[0]

    root = tmp_path / "m"
    write_pair(root, "00001D", {"train/boxes": "0 0.5 0.5 0.5 0.5\n"}, "train/ir", "train/vi")
    write_image(root / "train/Segmentation_labels/00001D.png", np.zeros((H, W), dtype=np.uint8))
    (root / "train/classes.txt").write_text("person\n")
    msrs = open_dataset("msrs", root, yolo_labels="boxes")
    sample = msrs[0]
    assert msrs.box_classes.names == ("person",) and msrs.classes.num_classes == 9
    assert sample["label"].shape == (H, W) and sample["boxes"].shape == (1, 5)


def test_real_labels_count_and_split(shared_data: Path) -> None:
    root = shared_data / "msrs_det"
    if not root.is_dir():
        pytest.skip(f"{root} not found")
    full = open_dataset("msrs_det", root)
    counts = torch.zeros(3, dtype=torch.int64)
    empty = 0
    for rec in full.records:
        table = full.read_boxes(rec)
        assert table is not None and not table.unknown
        counts += torch.bincount(torch.from_numpy(table.boxes[:, 0]).long(), minlength=3)
        empty += len(table.boxes) == 0
    assert counts.tolist() == [747, 107, 385] and empty == 29
    train, val = (open_dataset("msrs_det", root, s, labels=False) for s in ("train", "val"))
    train_names, val_names = {r.name for r in train.records}, {r.name for r in val.records}
    assert not train_names & val_names and train_names | val_names == {r.name for r in full.records}
    assert all(split_of(n) == "val" for n in val_names) and 50 <= len(val_names) <= 75
    assert {condition(n) for n in val_names} == {"day", "night"} == {condition(n) for n in train_names}

"""Dataset readers on tiny fake datasets written in each published layout, plus ``check_dataset``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from taskfuse.data import classes
from taskfuse.data.check import (
    BOX_CLASS,
    BOX_OUTSIDE,
    LABEL_SIZE,
    LABEL_VALUES,
    LAYOUT,
    MISSING,
    SIZE,
    UNREADABLE,
    check_dataset,
)
from taskfuse.data.datasets import names, open_dataset
from taskfuse.data.datasets.paired import in_holdout
from taskfuse.data.io import write_image
from taskfuse.errors import TaskfuseError

H, W = 6, 8
RNG = np.random.default_rng(0)


def rgb() -> np.ndarray:
    return RNG.integers(0, 256, (H, W, 3), dtype=np.uint8)


def gray() -> np.ndarray:
    return RNG.integers(0, 256, (H, W), dtype=np.uint8)


def label(num_classes: int) -> np.ndarray:
    lab = RNG.integers(0, num_classes, (H, W), dtype=np.uint8)
    lab[0, 0] = 255
    return lab


def write_seg(root: Path, ir: str, vi: str, lab: str, names_: list[str], num_classes: int) -> dict:
    """Write IR (gray), VIS (RGB) and label files; returns the arrays by name."""
    arrays = {}
    for n in names_:
        a = {"ir": gray(), "vi": rgb(), "label": label(num_classes)}
        write_image(root / ir / f"{n}.png", a["ir"])
        write_image(root / vi / f"{n}.png", a["vi"])
        write_image(root / lab / f"{n}.png", a["label"])
        arrays[n] = a
    return arrays


def voc(path: Path, objects: list[tuple[str, tuple[float, float, float, float]]]) -> None:
    objs = "".join(
        f"<object><name>{n}</name><difficult>0</difficult><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin>"
        f"<xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"
        for n, b in objects
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"<annotation><size><width>{W}</width><height>{H}</height><depth>3</depth></size>{objs}</annotation>"
    )


def assert_sample(s: dict, a: dict) -> None:
    assert s["ir"].shape == (1, H, W) and s["ir"].dtype == torch.float32
    assert s["vi"].shape == (3, H, W) and s["vi"].dtype == torch.float32
    torch.testing.assert_close(s["ir"][0], torch.from_numpy(a["ir"] / 255.0).float())
    torch.testing.assert_close(s["vi"], torch.from_numpy(a["vi"] / 255.0).float().permute(2, 0, 1))
    if "label" in a:
        assert s["label"].dtype == torch.int64
        assert torch.equal(s["label"], torch.from_numpy(a["label"].astype(np.int64)))


def test_registry_lists_every_layout() -> None:
    assert {"coco_keypoints", "fmb", "llvip", "m3fd", "mfnet", "msrs", "paired", "pst900"} <= set(names())


def test_msrs_reads_published_layout(tmp_path: Path) -> None:
    a = write_seg(tmp_path, "train/ir", "train/vi", "train/Segmentation_labels", ["00001D", "00002N"], 9)
    write_seg(tmp_path, "test/ir", "test/vi", "test/Segmentation_labels", ["00004N"], 9)
    ds = open_dataset("msrs", tmp_path)
    assert (ds.split, len(ds), ds.classes.names[1]) == ("train", 2, "car")
    s = ds[1]
    assert s["name"] == "00002N" and s["vi_gray"] is False
    assert_sample(s, a["00002N"])
    assert s["label"][0, 0] == 255
    assert len(open_dataset("msrs", tmp_path, split="test")) == 1


def test_msrs_missing_partner_names_file_and_fix(tmp_path: Path) -> None:
    write_seg(tmp_path, "train/ir", "train/vi", "train/Segmentation_labels", ["a", "b"], 9)
    (tmp_path / "train/vi/b.png").unlink()
    with pytest.raises(TaskfuseError, match=r"ir/b\.png.*no vi file.*skip_incomplete"):
        open_dataset("msrs", tmp_path)
    ds = open_dataset("msrs", tmp_path, skip_incomplete=True)
    assert [r.name for r in ds.records] == ["a"] and len(ds.incomplete) == 1


def test_missing_label_folder_and_labels_false(tmp_path: Path) -> None:
    for n in ("a", "b"):
        write_image(tmp_path / f"train/ir/{n}.png", gray())
        write_image(tmp_path / f"train/vi/{n}.png", rgb())
    with pytest.raises(TaskfuseError, match="Segmentation_labels: no such folder"):
        open_dataset("msrs", tmp_path)
    ds = open_dataset("msrs", tmp_path, labels=False)
    assert "label" not in ds[0]


def test_empty_folder_unknown_split_and_bad_options(tmp_path: Path) -> None:
    (tmp_path / "train/ir").mkdir(parents=True)
    (tmp_path / "train/vi").mkdir(parents=True)
    with pytest.raises(TaskfuseError, match="no images found"):
        open_dataset("msrs", tmp_path, labels=False)
    with pytest.raises(TaskfuseError, match="no split 'val'; available: train, test"):
        open_dataset("msrs", tmp_path, split="val")
    with pytest.raises(TaskfuseError, match="did you mean 'msrs'"):
        open_dataset("msr", tmp_path)
    with pytest.raises(TaskfuseError, match="its options are.*skip_incomplete"):
        open_dataset("msrs", tmp_path, colour=True)
    with pytest.raises(TaskfuseError, match="no such folder"):
        open_dataset("msrs", tmp_path / "nowhere")


def test_construction_is_lazy(tmp_path: Path) -> None:
    write_seg(tmp_path, "train/ir", "train/vi", "train/Segmentation_labels", ["a"], 9)
    (tmp_path / "train/vi/a.png").write_bytes(b"not a png")
    ds = open_dataset("msrs", tmp_path)
    with pytest.raises(TaskfuseError, match=r"vi/a\.png: not a readable image"):
        ds[0]


def test_bad_label_value_raises_on_read(tmp_path: Path) -> None:
    a = write_seg(tmp_path, "train/ir", "train/vi", "train/Segmentation_labels", ["a"], 9)
    bad = a["a"]["label"].copy()
    bad[1, 1] = 12
    write_image(tmp_path / "train/Segmentation_labels/a.png", bad)
    with pytest.raises(TaskfuseError, match=r"label values \[12\] are not msrs classes \(0\.\.8, 255 = ignore\)"):
        open_dataset("msrs", tmp_path)[0]


def test_mfnet_four_channel_png_and_day_night_splits(tmp_path: Path) -> None:
    arrays = {}
    for n in ("00001D", "00002N", "00003D"):
        img = RNG.integers(0, 256, (H, W, 4), dtype=np.uint8)
        write_image(tmp_path / "images" / f"{n}.png", img)
        write_image(tmp_path / "labels" / f"{n}.png", label(9))
        arrays[n] = img
    (tmp_path / "train.txt").write_text("00001D\n00002N\n")
    (tmp_path / "test.txt").write_text("00002N\n00003D\n")
    ds = open_dataset("mfnet", tmp_path)
    s = ds[0]
    torch.testing.assert_close(s["ir"][0], torch.from_numpy(arrays["00001D"][..., 3] / 255.0).float())
    torch.testing.assert_close(s["vi"], torch.from_numpy(arrays["00001D"][..., :3] / 255.0).float().permute(2, 0, 1))
    assert s["label"].shape == (H, W)
    assert [r.name for r in open_dataset("mfnet", tmp_path, split="test_day").records] == ["00003D"]
    assert [r.name for r in open_dataset("mfnet", tmp_path, split="test_night").records] == ["00002N"]
    with pytest.raises(TaskfuseError, match="no split 'val'"):
        open_dataset("mfnet", tmp_path, split="val")
    write_image(tmp_path / "images" / "00001D.png", rgb())
    with pytest.raises(TaskfuseError, match="4 channels"):
        open_dataset("mfnet", tmp_path)[0]


def test_fmb_layout_and_classes(tmp_path: Path) -> None:
    a = write_seg(tmp_path, "test/Infrared", "test/Visible", "test/Label", ["00001"], 15)
    ds = open_dataset("fmb", tmp_path, split="test")
    assert ds.classes.num_classes == 15 and ds.classes.names[14] == "pole"
    assert_sample(ds[0], a["00001"])


def test_pst900_thermal_and_raw_16_bit(tmp_path: Path) -> None:
    a = write_seg(tmp_path, "train/thermal", "train/rgb", "train/labels", ["31_bag1a_frame0007"], 5)
    raw = np.linspace(3000, 3400, H * W).reshape(H, W).astype(np.uint16)
    (tmp_path / "train/thermal_raw").mkdir()
    Image.fromarray(raw).save(tmp_path / "train/thermal_raw/31_bag1a_frame0007.png")
    ds = open_dataset("pst900", tmp_path)
    assert ds.classes.names == ("background", "fire_extinguisher", "backpack", "hand_drill", "survivor")
    assert_sample(ds[0], a["31_bag1a_frame0007"])
    ir = open_dataset("pst900", tmp_path, thermal="thermal_raw")[0]["ir"]
    assert ir.min() == 0 and ir.max() == 1
    full = open_dataset("pst900", tmp_path, thermal="thermal_raw", ir_range="full")[0]["ir"]
    torch.testing.assert_close(full[0], torch.from_numpy(raw / 65535.0).float())


def test_m3fd_boxes_classes_and_split_lists(tmp_path: Path) -> None:
    for n in ("00000", "00001"):
        ir = gray()
        write_image(tmp_path / "Ir" / f"{n}.png", np.repeat(ir[..., None], 3, axis=2))
        write_image(tmp_path / "Vis" / f"{n}.png", rgb())
    voc(tmp_path / "Annotation/00000.xml", [("People", (1, 2, 3, 5)), ("lamp", (0, 0, 8, 6))])
    voc(tmp_path / "Annotation/00001.xml", [("Truck", (2, 1, 7, 4))])
    ds = open_dataset("m3fd", tmp_path)
    assert ds.split == "all" and len(ds) == 2
    assert ds.classes.names == ("People", "Car", "Bus", "Lamp", "Motorcycle", "Truck")
    s = ds[0]
    assert s["ir"].shape == (1, H, W)
    assert s["boxes"].tolist() == [[0, 1, 2, 3, 5], [3, 0, 0, 8, 6]]
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta/train.txt").write_text("00001.png\n")
    assert [r.name for r in open_dataset("m3fd", tmp_path, split="train").records] == ["00001"]
    voc(tmp_path / "Annotation/00001.xml", [("Dog", (2, 1, 7, 4))])
    with pytest.raises(TaskfuseError, match="unknown class.*Dog.*People, Car"):
        ds[1]


def test_llvip_annotations_shared_by_splits(tmp_path: Path) -> None:
    write_image(tmp_path / "infrared/test/190001.jpg", gray())
    write_image(tmp_path / "visible/test/190001.jpg", rgb())
    voc(tmp_path / "Annotations/190001.xml", [("person", (1, 1, 4, 5))])
    voc(tmp_path / "Annotations/010001.xml", [("person", (1, 1, 4, 5))])
    ds = open_dataset("llvip", tmp_path, split="test")
    s = ds[0]
    assert len(ds) == 1 and s["boxes"].tolist() == [[0, 1, 1, 4, 5]] and ds.classes.names == ("person",)
    (tmp_path / "Annotations/190001.xml").unlink()
    with pytest.raises(TaskfuseError, match="no boxes file in .*Annotations"):
        open_dataset("llvip", tmp_path, split="test")


def test_paired_gray_visible_and_custom_folders(tmp_path: Path) -> None:
    ir, vi = gray(), gray()
    write_image(tmp_path / "cropinfrared/FLIR_1.png", ir)
    write_image(tmp_path / "crop_LR_visible/FLIR_1.jpg", vi)
    with pytest.raises(TaskfuseError, match="the ir_dir and vi_dir options"):
        open_dataset("paired", tmp_path)
    s = open_dataset("paired", tmp_path, ir_dir="cropinfrared", vi_dir="crop_LR_visible")[0]
    assert s["vi_gray"] is True and s["vi"].shape == (3, H, W)
    assert torch.equal(s["vi"][0], s["vi"][2])
    assert "label" not in s and "boxes" not in s


def flat_pairs(root: Path, names: list[str]) -> Path:
    for name in names:
        write_image(root / "ir" / f"{name}.png", gray())
        write_image(root / "vi" / f"{name}.jpg", rgb())
    return root


def test_paired_flat_folder_splits_a_fixed_fifth_by_name_hash(tmp_path: Path) -> None:
    names = [f"FLIR_{i:05d}" for i in range(1, 21)]
    root = flat_pairs(tmp_path, names)
    split = {s: [r.name for r in open_dataset("paired", root, s).records] for s in ("all", "train", "val")}
    assert split["all"] == names and sorted(split["train"] + split["val"]) == names
    assert split["val"] == [n for n in names if in_holdout(n)] and 0 < len(split["val"]) < len(names) / 2
    flat_pairs(tmp_path, [f"FLIR_{i:05d}" for i in range(21, 61)])
    grown = {s: {r.name for r in open_dataset("paired", root, s).records} for s in ("train", "val")}
    assert set(split["train"]) <= grown["train"] and set(split["val"]) <= grown["val"]
    assert 150 < sum(in_holdout(f"{i:05d}") for i in range(1000)) < 250


def test_paired_split_folders_win_and_bad_splits_name_the_layouts(tmp_path: Path) -> None:
    flat_pairs(tmp_path, ["a", "b"])
    flat_pairs(tmp_path / "train", ["c"])
    assert [r.name for r in open_dataset("paired", tmp_path, "train").records] == ["c"]
    with pytest.raises(TaskfuseError, match=r"no ir/ folder for split 'test'.*split folders found: train"):
        open_dataset("paired", tmp_path, "test")
    few = flat_pairs(tmp_path / "few", ["FLIR_00001"])
    with pytest.raises(TaskfuseError, match="none of its 1 pairs falls in split 'val'.*read split 'all'"):
        open_dataset("paired", few, "val")


def test_paired_reads_roadscene(shared_data: Path) -> None:
    ds = open_dataset("paired", shared_data / "roadscene")
    s = ds[0]
    assert len(ds) > 100 and s["ir"].shape[0] == 1 and s["vi"].shape[0] == 3
    assert s["ir"].shape[1:] == s["vi"].shape[1:]


def test_paired_reads_m3fd_sample_rgb_stored_ir(shared_data: Path) -> None:
    s = open_dataset("paired", shared_data / "m3fd_sample")[0]
    assert s["name"] == "M3FD_00471" and s["ir"].shape == (1, 768, 1024) and s["vi"].shape == (3, 768, 1024)


def coco(tmp_path: Path) -> None:
    for split_dir in ("ir/train", "vi/train"):
        for n in ("0001", "0002"):
            write_image(tmp_path / split_dir / f"{n}.png", rgb() if split_dir.startswith("vi") else gray())
    data = {
        "images": [
            {"id": 1, "file_name": "0001.png", "width": W, "height": H},
            {"id": 2, "file_name": "0002.png", "width": W, "height": H},
        ],
        "annotations": [
            {
                "id": 5,
                "image_id": 1,
                "category_id": 3,
                "bbox": [1, 1, 4, 3],
                "iscrowd": 0,
                "keypoints": [2.5, 1.5, 2, 4.5, 2.5, 1, 0, 0, 0],
            },
            {"id": 6, "image_id": 1, "category_id": 3, "bbox": [0, 0, 8, 6], "iscrowd": 1},
        ],
        "categories": [
            {"id": 3, "name": "aircraft", "keypoints": ["Head", "Left_front", "Right_front"], "skeleton": [[1, 2]]}
        ],
    }
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations/train.json").write_text(json.dumps(data))


def test_coco_keypoints_layout(tmp_path: Path) -> None:
    coco(tmp_path)
    ds = open_dataset("coco_keypoints", tmp_path)
    assert ds.classes.names == ("aircraft",) and ds.keypoint_names == ["Head", "Left_front", "Right_front"]
    assert ds.flip_pairs == [(1, 2)]
    s0, s1 = ds[0], ds[1]
    assert s0["boxes"].tolist() == [[0, 1, 1, 5, 4]]
    assert s0["keypoints"].shape == (1, 3, 3) and s0["keypoints"][0, 1].tolist() == [4.5, 2.5, 1]
    assert s1["boxes"].shape == (0, 5) and s1["keypoints"].shape == (0, 3, 3)
    with pytest.raises(TaskfuseError, match="no split 'val'; available: train"):
        open_dataset("coco_keypoints", tmp_path, split="val")


def test_coco_keypoints_bad_json(tmp_path: Path) -> None:
    coco(tmp_path)
    path = tmp_path / "annotations/train.json"
    data = json.loads(path.read_text())
    data["annotations"][0]["keypoints"] = [1, 1, 2]
    path.write_text(json.dumps(data))
    with pytest.raises(TaskfuseError, match="annotation 5 has 1 keypoints"):
        open_dataset("coco_keypoints", tmp_path)
    path.write_text(json.dumps({"images": []}))
    with pytest.raises(TaskfuseError, match="missing the COCO list 'annotations'"):
        open_dataset("coco_keypoints", tmp_path)


def test_class_sets_match_palettes() -> None:
    for cs in (classes.MSRS, classes.FMB, classes.PST900, classes.M3FD, classes.LLVIP):
        assert len(cs.names) == len(cs.palette)
    assert classes.M3FD.index("people") == 0 and classes.M3FD.index("dog") is None


def test_check_clean_dataset(tmp_path: Path) -> None:
    write_seg(tmp_path, "train/ir", "train/vi", "train/Segmentation_labels", ["a", "b"], 9)
    report = check_dataset(tmp_path, "msrs", progress=False)
    assert report.ok and report.samples == 2 and report.summary().startswith("ok: 2 samples")


def test_check_reports_every_problem_with_counts(tmp_path: Path) -> None:
    a = write_seg(tmp_path, "train/ir", "train/vi", "train/Segmentation_labels", list("abcdef"), 9)
    for n in ("a", "b"):
        bad = a[n]["label"].copy()
        bad[2, 2] = 9 if n == "a" else 200
        write_image(tmp_path / f"train/Segmentation_labels/{n}.png", bad)
    write_image(tmp_path / "train/vi/c.png", np.zeros((H + 1, W, 3), np.uint8))
    write_image(tmp_path / "train/Segmentation_labels/d.png", np.zeros((H, W + 2), np.uint8))
    (tmp_path / "train/ir/e.png").write_bytes(b"garbage")
    (tmp_path / "train/vi/f.png").unlink()
    report = check_dataset(tmp_path, "msrs", progress=False)
    counts = {k: len(v) for k, v in report.problems.items()}
    assert counts == {LABEL_VALUES: 2, SIZE: 1, LABEL_SIZE: 1, UNREADABLE: 1, MISSING: 1}
    assert report.samples == 6
    text = report.summary()
    assert "label values out of range: 2" in text and "values [200]" in text and "6 problem(s) of 5 kind(s)" in text


def test_check_boxes(tmp_path: Path) -> None:
    for n in ("00000", "00001"):
        write_image(tmp_path / "Ir" / f"{n}.png", gray())
        write_image(tmp_path / "Vis" / f"{n}.png", rgb())
    voc(tmp_path / "Annotation/00000.xml", [("People", (1, 2, 3, 5)), ("Dog", (0, 0, 2, 2))])
    voc(tmp_path / "Annotation/00001.xml", [("Car", (2, 1, 9, 4)), ("Bus", (3, 3, 3, 4))])
    report = check_dataset(tmp_path, "m3fd", progress=False)
    assert {k: len(v) for k, v in report.problems.items()} == {BOX_CLASS: 1, BOX_OUTSIDE: 2}
    assert "Dog" in report.problems[BOX_CLASS][0]


def test_check_layout_problem_and_unknown_layout(tmp_path: Path) -> None:
    report = check_dataset(tmp_path, "fmb", progress=False)
    assert list(report.problems) == [LAYOUT] and "Infrared: no such folder" in report.problems[LAYOUT][0]
    with pytest.raises(TaskfuseError, match="unknown dataset"):
        check_dataset(tmp_path, "fmbb", progress=False)

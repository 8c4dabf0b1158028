"""The synthetic IR/VIS scenes: determinism, layout of the outputs, annotations, and the physics that make
fusion matter (checked numerically over small scenes)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
import torch

from taskfuse.data.classes import M3FD, MSRS
from taskfuse.data.datasets import open_dataset
from taskfuse.data.io import read_image, read_ir, read_vi
from taskfuse.data.synthetic import (
    KEYPOINT_NAMES,
    OBJECT_CLASSES,
    SceneConfig,
    SyntheticScenes,
    render_scene,
    write_scenes,
)
from taskfuse.data.synthetic.dataset import M3FD_NAMES
from taskfuse.errors import TaskfuseError

H, W = 128, 160
CLOSE = SceneConfig(persons=(2, 4), cars=(2, 4), distance_range=(4.0, 25.0), p_bump=0.6, p_car_stop=0.6)
"""More and nearer objects and marks than the defaults, so that 20 small scenes hold enough of each."""
K3, K7 = np.ones((3, 3), np.uint8), np.ones((7, 7), np.uint8)


@pytest.fixture(scope="module")
def default_scenes() -> list[dict]:
    return [render_scene(seed, H, W) for seed in range(20)]


@pytest.fixture(scope="module")
def day_night() -> list[tuple[dict, dict]]:
    """The same 20 streets by day and by night."""
    return [
        (render_scene(s, H, W, night=False, config=CLOSE), render_scene(s, H, W, night=True, config=CLOSE))
        for s in range(20)
    ]


def luma(scene: dict) -> np.ndarray:
    r, g, b = scene["vi"].numpy()
    return 0.299 * r + 0.587 * g + 0.114 * b


def ring(mask: np.ndarray, label: np.ndarray) -> np.ndarray:
    """Unlabelled pixels 2-3 px outside ``mask``: the local background."""
    m = mask.astype(np.uint8)
    return cv2.dilate(m, K7).astype(bool) & ~cv2.dilate(m, K3).astype(bool) & (label == 0)


def distinguishability(img: np.ndarray, mask: np.ndarray, background: np.ndarray) -> float:
    """Kolmogorov-Smirnov distance between the pixel values inside ``mask`` and in its background: 0 when
    they are drawn alike, 1 when a threshold separates them. Unlike a mean difference it also counts objects
    that are both hotter and colder than their surroundings (a car's tyres and its windows)."""
    a, b = np.sort(img[mask]), np.sort(img[background])
    grid = np.concatenate([a, b])
    cdf_a = np.searchsorted(a, grid, side="right") / len(a)
    cdf_b = np.searchsorted(b, grid, side="right") / len(b)
    return float(np.abs(cdf_a - cdf_b).max())


def robust_contrast(img: np.ndarray, mask: np.ndarray, background: np.ndarray) -> float:
    """|median inside - median of the background| / robust std of the background (MAD x 1.4826)."""
    bg = img[background]
    med = np.median(bg)
    mad = 1.4826 * np.median(np.abs(bg - med))
    return float(abs(np.median(img[mask]) - med) / (mad + 1e-3))


def object_masks(scene: dict, cls: int, min_pixels: int = 30):
    """Visible pixels of each object of ``cls`` (label pixels of its class inside its box) and background."""
    label = scene["label"].numpy()
    for c, x1, y1, x2, y2 in scene["boxes"].numpy().astype(int):
        if c != cls:
            continue
        mask = np.zeros(label.shape, bool)
        mask[y1:y2, x1:x2] = label[y1:y2, x1:x2] == cls
        background = ring(mask, label)
        if mask.sum() >= min_pixels and background.sum() >= 10:
            yield mask, background


def digest(scene: dict) -> str:
    h = hashlib.sha256()
    for key in ("ir", "vi", "label", "boxes", "keypoints"):
        h.update(scene[key].numpy().tobytes())
    h.update(scene["name"].encode())
    return h.hexdigest()


def test_same_seed_gives_identical_output_across_calls_and_processes() -> None:
    a, b = render_scene(123, 48, 64), render_scene(123, 48, 64)
    for key in ("ir", "vi", "label", "boxes", "keypoints"):
        assert torch.equal(a[key], b[key]), key
    assert a["name"] == b["name"] == f"synth_000123_{'night' if a['night'] else 'day'}"
    code = (
        "import hashlib; from taskfuse.data.synthetic import render_scene; s = render_scene(123, 48, 64); "
        "h = hashlib.sha256(); [h.update(s[k].numpy().tobytes()) for k in ('ir', 'vi', 'label', 'boxes', "
        "'keypoints')]; h.update(s['name'].encode()); print(h.hexdigest())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == digest(a)
    assert digest(render_scene(124, 48, 64)) != digest(a)


def test_forcing_the_time_of_day_keeps_the_street(day_night) -> None:
    for day, night in day_night[:5]:
        assert torch.equal(day["label"], night["label"])
        assert torch.equal(day["boxes"], night["boxes"])
        assert not day["night"] and night["night"]
        assert day["name"].endswith("_day") and night["name"].endswith("_night")


def test_shapes_dtypes_and_ranges(default_scenes) -> None:
    for s in default_scenes:
        assert s["ir"].shape == (1, H, W) and s["ir"].dtype == torch.float32
        assert s["vi"].shape == (3, H, W) and s["vi"].dtype == torch.float32
        assert s["label"].shape == (H, W) and s["label"].dtype == torch.int64
        n = len(s["boxes"])
        assert s["boxes"].shape == (n, 5) and s["boxes"].dtype == torch.float32
        assert s["keypoints"].shape == (n, len(KEYPOINT_NAMES), 3) and s["keypoints"].dtype == torch.float32
        for key in ("ir", "vi"):
            assert s[key].min() >= 0.0 and s[key].max() <= 1.0 and s[key].std() > 0.02
        assert s["label"].min() >= 0 and s["label"].max() <= 8
    present = set(torch.cat([s["label"].unique() for s in default_scenes]).tolist())
    assert {0, 1, 2, 4, 6} <= present
    assert sum(len(s["boxes"]) for s in default_scenes) > 60


def test_boxes_are_tight_around_the_label_pixels_of_their_class(default_scenes) -> None:
    for s in default_scenes:
        label = s["label"].numpy()
        covered = np.zeros(label.shape, bool)
        for c, x1, y1, x2, y2 in s["boxes"].numpy():
            assert c in OBJECT_CLASSES
            assert 0 <= x1 < x2 <= W and 0 <= y1 < y2 <= H
            assert x1 == int(x1) and y2 == int(y2)
            x1, y1, x2, y2 = int(x1), int(y1), int(x2), int(y2)
            inside = label[y1:y2, x1:x2] == c
            assert inside[0].any() and inside[-1].any() and inside[:, 0].any() and inside[:, -1].any()
            covered[y1:y2, x1:x2] |= inside
        objects = np.isin(label, OBJECT_CLASSES)
        assert not (objects & ~covered).any(), "object pixels outside every box of their class"


def test_keypoints_follow_coco_visibility(default_scenes) -> None:
    seen = 0
    for s in default_scenes:
        label = s["label"].numpy()
        for box, kps in zip(s["boxes"].numpy(), s["keypoints"].numpy(), strict=True):
            c, x1, y1, x2, y2 = box
            for x, y, v in kps:
                assert v in (0.0, 1.0, 2.0)
                if v == 0:
                    assert x == 0 and y == 0
                    continue
                assert 0 <= x < W and 0 <= y < H
                if v == 2:
                    seen += 1
                    assert x1 <= x < x2 and y1 <= y < y2
                    assert label[int(y), int(x)] == c
            top, bottom, left, right = kps
            if top[2] and bottom[2]:
                assert top[1] <= bottom[1]
            if left[2] and right[2]:
                assert left[0] <= right[0]
    assert seen > 100


def test_people_and_cars_stand_out_in_infrared_at_night_and_in_visible_by_day(day_night) -> None:
    dist: dict[tuple[int, bool, str], list[float]] = {}
    for pair in day_night:
        for scene in pair:
            ir, vi = scene["ir"][0].numpy(), luma(scene)
            for cls in (1, 2):
                for mask, bg in object_masks(scene, cls):
                    dist.setdefault((cls, scene["night"], "ir"), []).append(distinguishability(ir, mask, bg))
                    dist.setdefault((cls, scene["night"], "vi"), []).append(distinguishability(vi, mask, bg))
    med = {k: float(np.median(v)) for k, v in dist.items()}
    persons_night = np.array(dist[(2, True, "ir")]) > np.array(dist[(2, True, "vi")])
    assert len(persons_night) >= 20
    assert persons_night.mean() >= 0.8
    assert med[(2, True, "ir")] > 2 * med[(2, True, "vi")]
    assert med[(1, True, "ir")] > med[(1, True, "vi")]
    for cls in (1, 2):
        assert med[(cls, False, "vi")] > 0.3, "by day the visible image shows objects too"
        assert med[(cls, False, "vi")] > med[(cls, True, "vi")], "night degrades the visible image"
        day_gain = np.median(np.array(dist[(cls, False, "ir")]) - np.array(dist[(cls, False, "vi")]))
        night_gain = np.median(np.array(dist[(cls, True, "ir")]) - np.array(dist[(cls, True, "vi")]))
        assert night_gain > day_gain, "the infrared advantage grows at night"


def test_road_paint_is_visible_but_carries_no_heat(day_night) -> None:
    ir_c, vi_c = [], []
    for day, _ in day_night:
        label, ir, vi = day["label"].numpy(), day["ir"][0].numpy(), luma(day)
        for cls in (4, 5, 8):
            mask = label == cls
            background = ring(mask, label)
            if mask.sum() >= 20 and background.sum() >= 10:
                ir_c.append(robust_contrast(ir, mask, background))
                vi_c.append(robust_contrast(vi, mask, background))
    assert len(ir_c) >= 15
    assert np.median(ir_c) < 0.6
    assert np.median(vi_c) > 1.5
    assert np.mean(np.array(vi_c) > 3 * np.array(ir_c)) > 0.8


def test_night_is_dark_in_the_visible_image(day_night) -> None:
    day = np.array([luma(d).mean() for d, _ in day_night])
    night = np.array([luma(n).mean() for _, n in day_night])
    assert (night < 0.7 * day).all()
    assert night.mean() < 0.3 * day.mean()


def test_infrared_is_smoother_than_visible(default_scenes) -> None:
    for s in default_scenes:
        hf_ir = np.abs(cv2.Laplacian(s["ir"][0].numpy(), cv2.CV_32F)).mean()
        hf_vi = np.abs(cv2.Laplacian(luma(s), cv2.CV_32F)).mean()
        assert hf_ir < 0.4 * hf_vi


@pytest.mark.parametrize("fraction", [0.0, 0.3, 1.0])
def test_night_fraction_is_respected(fraction: float) -> None:
    config = SceneConfig(night_fraction=fraction)
    scenes = SyntheticScenes(400, seed=5, height=16, width=16, config=config)
    nights = np.array([scenes.name(i).endswith("_night") for i in range(len(scenes))])
    assert abs(nights.mean() - fraction) <= 4 * np.sqrt(fraction * (1 - fraction) / len(nights)) + 1e-9
    for i in range(3):
        assert render_scene(scenes.scene_seed(i), 16, 16, config=config)["night"] == nights[i]


def test_dataset_items_match_render_scene() -> None:
    scenes = SyntheticScenes(3, seed=7, height=32, width=40)
    assert len(scenes) == 3
    item = scenes[2]
    assert set(item) == {"ir", "vi", "vi_gray", "label", "boxes", "keypoints", "name"}
    assert item["vi_gray"] is False
    ref = render_scene(7_000_002, 32, 40)
    assert item["name"] == ref["name"]
    assert torch.equal(item["ir"], ref["ir"]) and torch.equal(item["label"], ref["label"])
    with pytest.raises(IndexError):
        scenes[3]


def test_write_scenes_layout_readback_and_idempotence(tmp_path) -> None:
    root = write_scenes(tmp_path / "synth", n_train=3, n_test=2, height=32, width=48, seed=1)
    scenes = SyntheticScenes(5, seed=1, height=32, width=48)
    for split, indices in (("train", range(3)), ("test", range(3, 5))):
        ann = json.loads((root / split / "annotations.json").read_text())
        assert [im["file_name"] for im in ann["images"]] == [f"{scenes.name(i)}.png" for i in indices]
        assert [c["id"] for c in ann["categories"]] == list(OBJECT_CLASSES)
        assert ann["categories"][0]["keypoints"] == list(KEYPOINT_NAMES)
        for i, image in zip(indices, ann["images"], strict=True):
            item = scenes[i]
            name = item["name"]
            ir = read_ir(root / split / "ir" / f"{name}.png")
            vi = read_vi(root / split / "vi" / f"{name}.png")
            label = read_image(root / split / "Segmentation_labels" / f"{name}.png")
            assert torch.equal(ir, torch.round(item["ir"] * 255) / 255)
            assert torch.equal(vi, torch.round(item["vi"] * 255) / 255)
            assert label.dtype == np.uint8 and np.array_equal(label, item["label"].numpy())
            anns = [a for a in ann["annotations"] if a["image_id"] == image["id"]]
            assert len(anns) == len(item["boxes"])
            for a, box, kps in zip(anns, item["boxes"].tolist(), item["keypoints"].tolist(), strict=True):
                assert a["category_id"] == box[0]
                assert a["bbox"] == pytest.approx([box[1], box[2], box[3] - box[1], box[4] - box[2]])
                assert a["keypoints"] == pytest.approx([v for p in kps for v in p], abs=0.01)
    files = sorted(p for p in root.rglob("*") if p.is_file())
    assert len(files) == 5 * 3 + 2
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in files}
    write_scenes(root, n_train=3, n_test=2, height=32, width=48, seed=1)
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in files} == before
    victim = files[3]
    victim.unlink()
    write_scenes(root, n_train=3, n_test=2, height=32, width=48, seed=1)
    assert victim.read_bytes() == before[victim][1]
    with pytest.raises(TaskfuseError, match="other settings"):
        write_scenes(root, n_train=3, n_test=2, height=32, width=48, seed=2)
    with pytest.raises(TaskfuseError, match="other split sizes"):
        write_scenes(root, n_train=4, n_test=1, height=32, width=48, seed=1)


def test_bad_input_is_refused_with_the_key_named() -> None:
    with pytest.raises(TaskfuseError, match="night_fraction"):
        SceneConfig(night_fraction=1.5)
    with pytest.raises(TaskfuseError, match="persons"):
        SceneConfig(persons=(3, 1))
    with pytest.raises(TaskfuseError, match="distance_range"):
        SceneConfig(distance_range=(30.0, 10.0))
    with pytest.raises(TaskfuseError, match="seed"):
        render_scene(-1)
    with pytest.raises(TaskfuseError, match="height"):
        render_scene(0, 8, 64)
    with pytest.raises(TaskfuseError, match="layout"):
        write_scenes("unused", 1, 1, layout="coco")


def test_render_time() -> None:
    render_scene(0, 256, 320)
    cpu = []
    for seed in range(1, 6):
        start = time.process_time()
        render_scene(seed, 256, 320)
        cpu.append(time.process_time() - start)
    assert np.median(cpu) < 0.2


def rendered(n: int, seed: int, height: int, width: int) -> list[dict]:
    scenes = SyntheticScenes(n, seed=seed, height=height, width=width, config=CLOSE)
    return [scenes[i] for i in range(n)]


def test_msrs_layout_reads_back_with_the_msrs_reader(tmp_path) -> None:
    root = write_scenes(tmp_path / "msrs", 2, 1, 48, 64, seed=0, config=CLOSE, layout="msrs")
    items = rendered(3, 0, 48, 64)
    for split, expected in (("train", items[:2]), ("test", items[2:])):
        ds = open_dataset("msrs", root, split)
        assert [s["name"] for s in ds] == [item["name"] for item in expected]
        for sample, item in zip(ds, expected, strict=True):
            assert torch.equal(sample["label"], item["label"])
            assert torch.equal(sample["ir"], torch.round(item["ir"] * 255) / 255)


def test_m3fd_layout_reads_back_with_the_m3fd_reader(tmp_path) -> None:
    root = write_scenes(tmp_path / "m3fd", 3, 2, 48, 64, seed=0, config=CLOSE, layout="m3fd")
    items = rendered(5, 0, 48, 64)
    assert any((item["boxes"][:, 0] == 7).any() for item in items), "the scenes hold cones, which M3FD lacks"
    assert read_image(root / "Ir" / f"{items[0]['name']}.png").shape == (48, 64, 3)
    for split, expected in (("train", items[:3]), ("test", items[3:]), ("all", sorted(items, key=lambda i: i["name"]))):
        ds = open_dataset("m3fd", root, split)
        assert [s["name"] for s in ds] == [item["name"] for item in expected]
        for sample, item in zip(ds, expected, strict=True):
            kept = item["boxes"][item["boxes"][:, 0] != 7]
            names = [M3FD_NAMES[int(c)] for c in kept[:, 0]]
            assert [ds.classes.names[int(c)] for c in sample["boxes"][:, 0]] == names
            assert torch.equal(sample["boxes"][:, 1:], kept[:, 1:])
            assert torch.equal(sample["ir"], torch.round(item["ir"] * 255) / 255)
            assert torch.equal(sample["vi"], torch.round(item["vi"] * 255) / 255)
    assert {"Car", "People", "Motorcycle"} <= set(M3FD_NAMES.values()) <= set(M3FD.names)
    files = sorted(p for p in root.rglob("*") if p.is_file())
    assert len(files) == 5 * 3 + 4
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in files}
    write_scenes(root, 3, 2, 48, 64, seed=0, config=CLOSE, layout="m3fd")
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in files} == before
    xml = root / "Annotation" / f"{items[4]['name']}.xml"
    xml.unlink()
    write_scenes(root, 3, 2, 48, 64, seed=0, config=CLOSE, layout="m3fd")
    assert xml.read_bytes() == before[xml][1]
    with pytest.raises(TaskfuseError, match="other settings"):
        write_scenes(root, 3, 2, 48, 64, seed=1, config=CLOSE, layout="m3fd")
    with pytest.raises(TaskfuseError, match="other split sizes"):
        write_scenes(root, 2, 2, 48, 64, seed=0, config=CLOSE, layout="m3fd")


def test_coco_keypoints_layout_reads_back_with_the_coco_keypoints_reader(tmp_path) -> None:
    root = write_scenes(tmp_path / "kp", 2, 2, 48, 64, seed=1, config=CLOSE, layout="coco_keypoints")
    items = rendered(4, 1, 48, 64)
    for split, expected in (("train", items[:2]), ("test", items[2:])):
        ds = open_dataset("coco_keypoints", root, split)
        assert ds.classes.names == tuple(MSRS.names[c] for c in OBJECT_CLASSES)
        assert ds.keypoint_names == list(KEYPOINT_NAMES) and ds.flip_pairs == [(2, 3)]
        assert [s["name"] for s in ds] == [item["name"] for item in expected]
        for sample, item in zip(ds, expected, strict=True):
            classes = torch.tensor([float(OBJECT_CLASSES.index(int(c))) for c in item["boxes"][:, 0]])
            assert torch.equal(sample["boxes"][:, 0], classes)
            assert torch.equal(sample["boxes"][:, 1:], item["boxes"][:, 1:])
            assert torch.equal(sample["keypoints"], item["keypoints"])
            assert torch.equal(sample["vi"], torch.round(item["vi"] * 255) / 255)
    files = sorted(p for p in root.rglob("*") if p.is_file())
    assert len(files) == 4 * 2 + 2
    before = {p: p.read_bytes() for p in files}
    (root / "vi" / "test" / f"{items[3]['name']}.png").unlink()
    write_scenes(root, 2, 2, 48, 64, seed=1, config=CLOSE, layout="coco_keypoints")
    assert {p: p.read_bytes() for p in files} == before

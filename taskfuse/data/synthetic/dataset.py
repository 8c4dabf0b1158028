"""Synthetic scenes as tensors, as a torch ``Dataset``, and written to disk in the MSRS layout."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from taskfuse.data.classes import MSRS
from taskfuse.data.io import write_image
from taskfuse.data.synthetic.config import SceneConfig
from taskfuse.data.synthetic.render import render
from taskfuse.data.synthetic.scene import is_night, sample_scene
from taskfuse.errors import TaskfuseError

KEYPOINT_NAMES = ("top", "bottom", "left", "right")
"""The K = 4 keypoints of every object: extreme points of its full (amodal) silhouette, in this order.
Ties go to the middle pixel of the extreme row or column; coordinates are pixel centres."""
OBJECT_CLASSES = (1, 2, 3, 7)
"""MSRS classes that are object instances with boxes and keypoints: car, person, bike, color_cone."""
SEED_STRIDE = 1_000_000
"""Item ``i`` of a collection with base seed ``s`` is scene ``s * SEED_STRIDE + i``."""
MSRS_DIRS = ("ir", "vi", "Segmentation_labels")


def scene_name(seed: int, night: bool) -> str:
    return f"synth_{seed:06d}_{'night' if night else 'day'}"


def _check_size(height: int, width: int) -> None:
    for key, value in (("height", height), ("width", width)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 16:
            raise TaskfuseError(f"{key} = {value!r}: the image {key} must be an integer of at least 16 pixels")


def _check_seed(seed: int, key: str = "seed") -> None:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise TaskfuseError(f"{key} = {seed!r}: give a non-negative integer")


def render_scene(
    seed: int,
    height: int = 256,
    width: int = 320,
    night: bool | None = None,
    config: SceneConfig = SceneConfig(),  # noqa: B008 (frozen, immutable default)
) -> dict:
    """Render scene ``seed``: a registered IR/VIS pair with labels, boxes and keypoints.

    The same seed, size and config give bit-identical output in any process. ``night`` forces the time of
    day (the street stays the same); ``None`` draws it with ``config.night_fraction``.

    Returns ``ir`` (1, H, W) float32 in [0, 1], ``vi`` (3, H, W) float32 RGB in [0, 1], ``label`` (H, W)
    int64 MSRS classes, ``boxes`` (N, 5) float32 ``[class, x1, y1, x2, y2]`` (tight box of the visible
    pixels, x2/y2 exclusive, of every car, person, bike and cone showing at least one pixel), ``keypoints``
    (N, 4, 3) float32 ``[x, y, v]`` in ``KEYPOINT_NAMES`` order (COCO visibility: 2 seen, 1 occluded,
    0 outside the image with x = y = 0), ``night`` and ``name``.
    """
    _check_seed(seed)
    _check_size(height, width)
    scene = sample_scene(int(seed), int(height), int(width), night, config)
    out = render(scene, config)
    return {
        "ir": torch.from_numpy(out.ir).unsqueeze(0),
        "vi": torch.from_numpy(np.ascontiguousarray(out.vi.transpose(2, 0, 1))),
        "label": torch.from_numpy(out.label.astype(np.int64)),
        "boxes": torch.from_numpy(out.boxes),
        "keypoints": torch.from_numpy(out.keypoints),
        "night": scene.clim.night,
        "name": scene_name(int(seed), scene.clim.night),
    }


class SyntheticScenes(Dataset):
    """``length`` scenes; item ``i`` is ``render_scene(seed * SEED_STRIDE + i)`` laid out like the items of
    the dataset readers: ``ir, vi, vi_gray (False), name, label, boxes, keypoints`` (the ``night`` key is
    dropped; the name ends in ``_day`` or ``_night``)."""

    def __init__(
        self,
        length: int,
        seed: int = 0,
        height: int = 256,
        width: int = 320,
        config: SceneConfig = SceneConfig(),  # noqa: B008 (frozen, immutable default)
    ) -> None:
        _check_seed(seed)
        _check_size(height, width)
        if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or not 0 <= length <= SEED_STRIDE:
            raise TaskfuseError(f"length = {length!r}: give an integer between 0 and {SEED_STRIDE}")
        self.length, self.seed = int(length), int(seed)
        self.height, self.width, self.config = int(height), int(width), config

    def __len__(self) -> int:
        return self.length

    def scene_seed(self, index: int) -> int:
        if not 0 <= index < self.length:
            raise IndexError(f"scene index {index} out of range for {self.length} scenes")
        return self.seed * SEED_STRIDE + index

    def name(self, index: int) -> str:
        seed = self.scene_seed(index)
        return scene_name(seed, is_night(seed, self.config))

    def __getitem__(self, index: int) -> dict:
        item = render_scene(self.scene_seed(index), self.height, self.width, None, self.config)
        item.pop("night")
        item["vi_gray"] = False
        return item


def _coco_entries(image_id: int, name: str, item: dict) -> tuple[dict, list[dict]]:
    h, w = item["label"].shape
    image = {
        "id": image_id,
        "file_name": f"{name}.png",
        "height": int(h),
        "width": int(w),
        "night": name.endswith("_night"),
    }
    anns = []
    for box, kps in zip(item["boxes"].tolist(), item["keypoints"].tolist(), strict=True):
        cls, x1, y1, x2, y2 = box
        flat = [round(v, 2) for p in kps for v in p]
        anns.append(
            {
                "image_id": image_id,
                "category_id": int(cls),
                "bbox": [x1, y1, x2 - x1, y2 - y1],
                "area": (x2 - x1) * (y2 - y1),
                "iscrowd": 0,
                "keypoints": flat,
                "num_keypoints": sum(1 for p in kps if p[2] > 0),
            }
        )
    return image, anns


def _write_json(path: Path, data: dict) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_scenes(
    root: str | os.PathLike,
    n_train: int,
    n_test: int,
    height: int = 256,
    width: int = 320,
    seed: int = 0,
    config: SceneConfig = SceneConfig(),  # noqa: B008 (frozen, immutable default)
    layout: str = "msrs",
) -> Path:
    """Write scenes in the published MSRS layout and return ``root``::

        root/{train,test}/ir/NAME.png                   8-bit gray infrared
        root/{train,test}/vi/NAME.png                   RGB visible
        root/{train,test}/Segmentation_labels/NAME.png  8-bit class indices
        root/{train,test}/annotations.json              COCO boxes and keypoints (category id = MSRS class)

    Train holds items ``0 .. n_train - 1`` of ``SyntheticScenes(n_train + n_test, seed)``, test the next
    ``n_test``, so the splits never share a scene. Images are written atomically and existing files are
    kept, so an interrupted run resumes and a repeated run changes nothing. A root written with another
    seed, size or config, or whose splits hold other scenes, is refused rather than mixed.
    """
    if layout != "msrs":
        raise TaskfuseError(f"layout = {layout!r}: only 'msrs' is supported")
    for key, value in (("n_train", n_train), ("n_test", n_test)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise TaskfuseError(f"{key} = {value!r}: give a non-negative number of scenes")
    scenes = SyntheticScenes(n_train + n_test, seed, height, width, config)
    root = Path(root)
    info = {
        "generator": "taskfuse.data.synthetic",
        "seed": int(seed),
        "height": int(height),
        "width": int(width),
        "config": json.loads(json.dumps(asdict(config))),
    }
    splits = {"train": range(n_train), "test": range(n_train, n_train + n_test)}
    for split, indices in splits.items():
        _check_split(root / split, {f"{scenes.name(i)}.png" for i in indices}, info)
    for split, indices in splits.items():
        _write_split(root / split, scenes, indices, info)
    return root


def _check_split(folder: Path, expected: set[str], info: dict) -> None:
    """Refuse a split folder written with other settings or holding images of other scenes."""
    ann_path = folder / "annotations.json"
    if ann_path.exists() and _read_annotations(ann_path)["info"] != info:
        raise TaskfuseError(f"{ann_path}: written with other settings; write to another root or delete this one")
    for d in MSRS_DIRS:
        stray = sorted(p.name for p in (folder / d).glob("*.png") if p.name not in expected)
        if stray:
            raise TaskfuseError(
                f"{folder / d}: holds {len(stray)} image(s) of other scenes (e.g. {stray[0]}), written with "
                "other split sizes; write to another root or delete this one"
            )


def _read_annotations(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
        if not all(k in data for k in ("info", "images", "annotations")):
            raise KeyError("info, images or annotations")
    except (OSError, ValueError, KeyError) as e:
        raise TaskfuseError(f"{path}: unreadable annotations ({e}); delete the file to rebuild it") from e
    return data


def _write_split(folder: Path, scenes: SyntheticScenes, indices: range, info: dict) -> None:
    """Render and write the scenes of one split that are missing, then its ``annotations.json``."""
    ann_path = folder / "annotations.json"
    known: dict[str, tuple[dict, list[dict]]] = {}
    if ann_path.exists():
        old = _read_annotations(ann_path)
        by_image: dict[int, list[dict]] = {}
        for a in old["annotations"]:
            by_image.setdefault(a["image_id"], []).append({k: v for k, v in a.items() if k != "id"})
        known = {im["file_name"]: (im, by_image.get(im["id"], [])) for im in old["images"]}
    images, anns = [], []
    for i in indices:
        name = scenes.name(i)
        paths = [folder / d / f"{name}.png" for d in MSRS_DIRS]
        entry = known.get(f"{name}.png")
        if entry is None or not all(p.exists() for p in paths):
            item = scenes[i]
            values = (item["ir"], item["vi"], item["label"].numpy().astype(np.uint8))
            for path, value in zip(paths, values, strict=True):
                if not path.exists():
                    write_image(path, value)
            entry = _coco_entries(i + 1, name, item)
        images.append(entry[0])
        anns.extend(entry[1])
    categories = [
        {
            "id": c,
            "name": MSRS.names[c],
            "supercategory": "object",
            "keypoints": list(KEYPOINT_NAMES),
            "skeleton": [],
        }
        for c in OBJECT_CLASSES
    ]
    data = {
        "info": info,
        "images": images,
        "annotations": [{"id": k + 1, **a} for k, a in enumerate(anns)],
        "categories": categories,
    }
    folder.mkdir(parents=True, exist_ok=True)
    if not ann_path.exists() or json.loads(ann_path.read_text()) != data:
        _write_json(ann_path, data)

"""Synthetic scenes as tensors, as a torch ``Dataset``, and written to disk in the MSRS, M3FD or COCO-keypoints
layout."""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from taskfuse.data.classes import MSRS
from taskfuse.data.io import write_image, write_text
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
M3FD_NAMES = {1: "Car", 2: "People", 3: "Motorcycle"}
"""M3FD class name of each object class in the ``m3fd`` layout; cones (7) have no M3FD class and are left out."""


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


def _voc_xml(name: str, item: dict) -> str:
    """Pascal VOC annotation of one scene with M3FD's class names; classes M3FD lacks are left out."""
    h, w = item["label"].shape
    root = ET.Element("annotation")
    ET.SubElement(root, "filename").text = f"{name}.png"
    size = ET.SubElement(root, "size")
    for key, value in (("width", w), ("height", h), ("depth", 3)):
        ET.SubElement(size, key).text = str(int(value))
    for cls, *coords in item["boxes"].tolist():
        if int(cls) not in M3FD_NAMES:
            continue
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "name").text = M3FD_NAMES[int(cls)]
        ET.SubElement(obj, "difficult").text = "0"
        box = ET.SubElement(obj, "bndbox")
        for key, value in zip(("xmin", "ymin", "xmax", "ymax"), coords, strict=True):
            ET.SubElement(box, key).text = f"{value:g}"
    ET.indent(root)
    return ET.tostring(root, encoding="unicode") + "\n"


@dataclass(frozen=True)
class _Layout:
    """Where a layout puts the files of one split (paths relative to the root, ``{split}`` filled in).

    ``folders``: (role, folder) per file of a scene, roles ``ir``, ``vi``, ``label`` (PNG) and ``xml`` (VOC);
    ``record``: the COCO annotations of the split, also the record that lets a later run resume; ``names``: an
    optional list of the split's scene names; ``ir_channels``: 3 where the layout stores infrared as RGB.
    """

    folders: tuple[tuple[str, str], ...]
    record: str
    names: str | None = None
    ir_channels: int = 1

    def folder(self, root: Path, split: str, role: str) -> Path:
        return root / dict(self.folders)[role].format(split=split)

    def files(self, root: Path, split: str, name: str) -> dict[str, Path]:
        return {role: self.folder(root, split, role) / f"{name}{_suffix(role)}" for role, _ in self.folders}


def _suffix(role: str) -> str:
    return ".xml" if role == "xml" else ".png"


LAYOUTS = {
    "msrs": _Layout(
        (("ir", "{split}/ir"), ("vi", "{split}/vi"), ("label", "{split}/Segmentation_labels")),
        "{split}/annotations.json",
    ),
    "m3fd": _Layout(
        (("ir", "Ir"), ("vi", "Vis"), ("xml", "Annotation")), "meta/{split}.json", "meta/{split}.txt", ir_channels=3
    ),
    "coco_keypoints": _Layout((("ir", "ir/{split}"), ("vi", "vi/{split}")), "annotations/{split}.json"),
}
"""The published layouts ``write_scenes`` writes, each readable by the ``open_dataset`` reader of that name."""


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
    """Write scenes in a published dataset layout and return ``root``.

    ``layout="msrs"`` (MSRS, read by ``open_dataset("msrs", root, split)``)::

        root/{train,test}/ir/NAME.png                   8-bit gray infrared
        root/{train,test}/vi/NAME.png                   RGB visible
        root/{train,test}/Segmentation_labels/NAME.png  8-bit class indices
        root/{train,test}/annotations.json              COCO boxes and keypoints (category id = MSRS class)

    ``layout="m3fd"`` (M3FD detection, ``open_dataset("m3fd", root, split)`` with split ``train``, ``test``
    or ``all``)::

        root/Ir/NAME.png              infrared stored as 3 equal channels, as M3FD does
        root/Vis/NAME.png
        root/Annotation/NAME.xml      VOC boxes named as M3FD's classes: car -> Car, person -> People,
                                      bike -> Motorcycle (M3FD's only two-wheeler class); cones, which M3FD has
                                      no class for, are left out (the reader refuses unknown names)
        root/meta/{train,test}.txt    the scene names of each split
        root/meta/{train,test}.json   COCO boxes and keypoints of every object (the record of what was written)

    ``layout="coco_keypoints"`` (``open_dataset("coco_keypoints", root, split)``)::

        root/ir/{train,test}/NAME.png
        root/vi/{train,test}/NAME.png
        root/annotations/{train,test}.json   COCO keypoints; categories car, person, bike, color_cone with
                                             their MSRS ids 1, 2, 3, 7, which the reader numbers 0..3

    Train holds items ``0 .. n_train - 1`` of ``SyntheticScenes(n_train + n_test, seed)``, test the next
    ``n_test``, so the splits never share a scene. Files are written atomically and existing files are
    kept, so an interrupted run resumes and a repeated run changes nothing. A root written with another
    seed, size or config, or whose splits hold other scenes, is refused rather than mixed.
    """
    if layout not in LAYOUTS:
        raise TaskfuseError(f"layout = {layout!r}: choose one of {', '.join(LAYOUTS)}")
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
    spec = LAYOUTS[layout]
    splits = {"train": range(n_train), "test": range(n_train, n_train + n_test)}
    _check_root(root, spec, scenes, splits, info)
    for split, indices in splits.items():
        _write_split(root, split, spec, scenes, indices, info)
    return root


def _check_root(root: Path, spec: _Layout, scenes: SyntheticScenes, splits: dict[str, range], info: dict) -> None:
    """Refuse a root written with other settings or holding files of other scenes."""
    expected: dict[Path, tuple[str, set[str]]] = {}
    for split, indices in splits.items():
        record = root / spec.record.format(split=split)
        if record.exists() and _read_annotations(record)["info"] != info:
            raise TaskfuseError(f"{record}: written with other settings; write to another root or delete this one")
        for role, _ in spec.folders:
            names = expected.setdefault(spec.folder(root, split, role), (_suffix(role), set()))[1]
            names.update(f"{scenes.name(i)}{_suffix(role)}" for i in indices)
    for folder, (suffix, names) in expected.items():
        stray = sorted(p.name for p in folder.glob(f"*{suffix}") if p.name not in names and not p.name.startswith("."))
        if stray:
            raise TaskfuseError(
                f"{folder}: holds {len(stray)} file(s) of other scenes (e.g. {stray[0]}), written with "
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


def _write_scene_file(path: Path, role: str, item: dict, spec: _Layout) -> None:
    if role == "xml":
        write_text(path, _voc_xml(path.stem, item))
    elif role == "label":
        write_image(path, item["label"].numpy().astype(np.uint8))
    elif role == "ir":
        write_image(path, item["ir"].expand(spec.ir_channels, -1, -1))
    else:
        write_image(path, item[role])


def _write_split(root: Path, split: str, spec: _Layout, scenes: SyntheticScenes, indices: range, info: dict) -> None:
    """Render and write the scenes of one split that are missing, then its COCO record and name list."""
    ann_path = root / spec.record.format(split=split)
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
        files = spec.files(root, split, name)
        entry = known.get(f"{name}.png")
        if entry is None or not all(p.exists() for p in files.values()):
            item = scenes[i]
            for role, path in files.items():
                if not path.exists():
                    _write_scene_file(path, role, item, spec)
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
    write_text(ann_path, json.dumps(data, indent=1))
    if spec.names is not None:
        write_text(root / spec.names.format(split=split), "".join(f"{scenes.name(i)}\n" for i in indices))

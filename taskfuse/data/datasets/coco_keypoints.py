"""Keypoint sets of two modalities with COCO-keypoints annotations (e.g. the VIRcraft aircraft set of FGFusion,
seed 003: 9 keypoints per aircraft, boxes, visible / occluded / invisible)::

    ROOT/
    ├── annotations/
    │   ├── train.json              one COCO keypoints file per split
    │   └── val.json
    ├── ir/
    │   ├── train/0001.png          ``file_name`` of the JSON, matched by stem
    │   └── val/...
    └── vi/
        ├── train/0001.png
        └── val/...

The JSON follows the COCO keypoint format (cocodataset.org, "Data format"): ``images`` [{id, file_name}],
``annotations`` [{image_id, category_id, bbox [x, y, w, h], keypoints [x1, y1, v1, ...]}], ``categories``
[{id, name, keypoints [names], skeleton}]. Coordinates are pixels; v is 0 (not labelled), 1 (labelled,
occluded) or 2 (labelled, visible). Crowd annotations (``iscrowd: 1``) are left out. Boxes become
[class, x, y, x + w, y + h] with class = position of the category in id order.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from taskfuse.data.classes import ClassSet, spread_palette
from taskfuse.data.datasets.base import DATASETS, PairedDataset, Record, join_stems
from taskfuse.data.datasets.voc import BoxTable
from taskfuse.data.pairs import list_images
from taskfuse.errors import TaskfuseError


def _load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise TaskfuseError(f"{path}: not a readable JSON file ({e}); replace it") from e
    for key in ("images", "annotations", "categories"):
        if not isinstance(data, dict) or not isinstance(data.get(key), list):
            raise TaskfuseError(
                f"{path}: missing the COCO list {key!r}; the file must hold images, annotations and categories"
            )
    return data


def flip_pairs(names: list[str]) -> list[tuple[int, int]]:
    """Index pairs of keypoints whose names differ only by left/right, to swap on a horizontal flip."""
    folded = [n.casefold() for n in names]
    pairs = []
    for i, n in enumerate(folded):
        if "left" in n and n.replace("left", "right") in folded:
            pairs.append((i, folded.index(n.replace("left", "right"))))
    return pairs


@DATASETS.register("coco_keypoints")
class CocoKeypointsDataset(PairedDataset):
    """IR/VIS keypoint samples: ``ir/<split>``, ``vi/<split>`` and ``annotations/<split>.json``.

    ``keypoint_names`` come from the categories, ``flip_pairs`` pair the left/right ones (for
    ``transforms.HorizontalFlip``), and ``classes`` hold the category names in id order.
    """

    layout = "coco_keypoints"
    annotations = "boxes, keypoints"
    splits = ("train", "val", "test")

    def __init__(
        self,
        root: str | os.PathLike,
        split: str | None = None,
        *,
        labels: bool = True,
        ir_range: str = "auto",
        skip_incomplete: bool = False,
    ) -> None:
        self._targets: dict[str, tuple[BoxTable, np.ndarray]] = {}
        super().__init__(root, split, labels=labels, ir_range=ir_range, skip_incomplete=skip_incomplete)

    def scan(self) -> tuple[list[Record], list[str]]:
        found = sorted(p.stem for p in (self.root / "annotations").glob("*.json"))
        self.check_split(found)
        path = self.root / "annotations" / f"{self.split}.json"
        data = _load(path)
        categories = sorted(data["categories"], key=lambda c: c.get("id", 0))
        try:
            self.classes = ClassSet(tuple(str(c["name"]) for c in categories), spread_palette(len(categories)))
            class_of = {c["id"]: i for i, c in enumerate(categories)}
            images = {img["id"]: Path(str(img["file_name"])).stem for img in data["images"]}
        except (KeyError, TypeError) as e:
            raise TaskfuseError(f"{path}: a category or image lacks {e}; each needs id and name / file_name") from e
        named = [c for c in categories if c.get("keypoints")]
        self.keypoint_names = [str(n) for n in named[0]["keypoints"]] if named else []
        self.flip_pairs = flip_pairs(self.keypoint_names)
        if self.labels:
            self._targets = self._index(path, data["annotations"], images, class_of)
        base = {"ir": self.root / "ir" / self.split, "vi": self.root / "vi" / self.split}
        listed = {role: list_images(folder) for role, folder in base.items()}
        complete, missing = join_stems(listed, base, stems=sorted(set(images.values())))
        return [Record(n, g["ir"], g["vi"]) for n, g in complete.items()], missing

    def _index(
        self, path: Path, annotations: list[dict], images: dict[Any, str], class_of: dict[Any, int]
    ) -> dict[str, tuple[BoxTable, np.ndarray]]:
        k = len(self.keypoint_names)
        rows: dict[str, list[tuple[list[float], np.ndarray]]] = {name: [] for name in images.values()}
        unknown: dict[str, list[str]] = {name: [] for name in images.values()}
        for a in annotations:
            if a.get("iscrowd", 0):
                continue
            name = images.get(a.get("image_id"))
            if name is None:
                raise TaskfuseError(
                    f"{path}: annotation {a.get('id')} refers to image_id {a.get('image_id')}, "
                    "which is not in images; fix the file"
                )
            if a.get("category_id") not in class_of:
                unknown[name].append(f"category_id {a.get('category_id')}")
                continue
            try:
                x, y, w, h = (float(v) for v in a["bbox"])
                kp = np.asarray(a.get("keypoints", [0.0] * 3 * k), dtype=np.float32).reshape(-1, 3)
            except (KeyError, TypeError, ValueError) as e:
                raise TaskfuseError(
                    f"{path}: annotation {a.get('id')} needs bbox [x, y, w, h] and keypoints "
                    f"[x, y, v] * {k} ({e}); fix the file"
                ) from e
            if len(kp) != k:
                raise TaskfuseError(
                    f"{path}: annotation {a.get('id')} has {len(kp)} keypoints, its category "
                    f"names {k}; every annotation needs all {k} (v = 0 where not labelled)"
                )
            rows[name].append(([float(class_of[a["category_id"]]), x, y, x + w, y + h], kp))
        return {
            name: (
                BoxTable(np.asarray([r[0] for r in got], np.float32).reshape(-1, 5), tuple(unknown[name])),
                np.stack([r[1] for r in got]) if got else np.zeros((0, k, 3), np.float32),
            )
            for name, got in rows.items()
        }

    def read_boxes(self, rec: Record) -> BoxTable | None:
        return self._targets[rec.name][0] if self.labels else None

    def read_keypoints(self, rec: Record) -> np.ndarray | None:
        return self._targets[rec.name][1] if self.labels else None

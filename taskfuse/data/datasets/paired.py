"""Plain paired folders without annotations, e.g. TNO, RoadScene, M3FD_Fusion, or any registered set::

    ROOT/                           a flat folder: split "all" (default) reads every pair, splits "train" and
    ├── ir/<name>.png               "val" a fixed part of them (below); any of .png .jpg .jpeg .bmp .tif .tiff,
    └── vi/<name>.jpg               names pair by stem

    ROOT/                           a folder split by hand: split S reads ROOT/S/
    └── S/
        ├── ir/
        └── vi/

In a flat folder, split ``val`` holds the pairs whose name hashes into the lowest fifth (``in_holdout``) and
``train`` the others, so the split is the same on every machine and adding pairs never moves a pair from one
split to the other. ``ir_dir`` and ``vi_dir`` rename the two folders (RoadScene's own release:
``ir_dir="cropinfrared", vi_dir="crop_LR_visible"``; M3FD_Fusion: ``ir_dir="Ir", vi_dir="Vis"``).
``yolo_labels`` names a folder of YOLO text boxes, one ``<name>.txt`` per pair (relative to the split's folder,
or absolute; ``yolo.py``), whose ``classes.txt`` (in it or its parent) becomes the layout's classes: the pairs
are then a detection set.

>>> [name for name in ("FLIR_00001", "FLIR_00002", "FLIR_00003", "FLIR_00004", "FLIR_00005") if in_holdout(name)]
['FLIR_00004']
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from taskfuse.data.datasets.base import DATASETS, PairedDataset, Record, scan_folders
from taskfuse.data.datasets.yolo import yolo_classes
from taskfuse.errors import TaskfuseError

HOLDOUT_PERCENT = 20
"""Share of a flat folder's pairs in its ``val`` split."""


def in_holdout(name: str) -> bool:
    """Whether the pair named ``name`` (the file stem) is in the ``val`` split of a flat folder: the first four
    bytes of the name's SHA-256, modulo 100, fall below ``HOLDOUT_PERCENT``."""
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") % 100 < HOLDOUT_PERCENT


@DATASETS.register("paired")
class PairedFolders(PairedDataset):
    """Unlabelled IR/VIS pairs from ``ROOT/<ir_dir>`` and ``ROOT/<vi_dir>`` (or ``ROOT/<split>/...``)."""

    layout = "paired"
    splits = ("all", "train", "val")
    default_split = "all"

    def __init__(
        self,
        root: str | os.PathLike,
        split: str | None = None,
        *,
        ir_dir: str = "ir",
        vi_dir: str = "vi",
        yolo_labels: str | os.PathLike | None = None,
        labels: bool = True,
        ir_range: str = "auto",
        skip_incomplete: bool = False,
    ) -> None:
        self.ir_dir, self.vi_dir = ir_dir, vi_dir
        self.yolo_labels = yolo_labels
        super().__init__(root, split, labels=labels, ir_range=ir_range, skip_incomplete=skip_incomplete)

    def scan(self) -> tuple[list[Record], list[str]]:
        nested = self.root / self.split
        if self.split != "all" and (nested / self.ir_dir).is_dir():
            return self._scan(nested)
        if not (self.root / self.ir_dir).is_dir() or self.split not in self.splits:
            found = sorted(p.name for p in self.root.iterdir() if (p / self.ir_dir).is_dir())
            hint = f"; split folders found: {', '.join(found)}" if found else ""
            raise TaskfuseError(
                f"{self.root}: no {self.ir_dir}/ folder for split {self.split!r}; the paired layout reads "
                f"ROOT/{self.ir_dir}/ + ROOT/{self.vi_dir}/ (splits all, train, val) or ROOT/<split>/{self.ir_dir}/ + "
                f"{self.vi_dir}/ (folders named otherwise: the ir_dir and vi_dir options){hint}"
            )
        records, incomplete = self._scan(self.root)
        if self.split == "all":
            return records, incomplete
        kept = [r for r in records if in_holdout(r.name) == (self.split == "val")]
        if records and not kept:
            raise TaskfuseError(
                f"{self.root}: none of its {len(records)} pairs falls in split {self.split!r} ({HOLDOUT_PERCENT}% of "
                "the names, by hash, form 'val'); add pairs, or read split 'all'"
            )
        return kept, incomplete

    def _scan(self, base: Path) -> tuple[list[Record], list[str]]:
        """The pairs of ``base/<ir_dir>`` and ``base/<vi_dir>``, with their boxes when ``yolo_labels`` is set."""
        boxes = None
        if self.yolo_labels is not None and self.labels:
            boxes = base / Path(self.yolo_labels)
            self.classes = yolo_classes(boxes)
            self.annotations = "boxes"
        folders = {"ir": base / self.ir_dir, "vi": base / self.vi_dir}
        return scan_folders(folders, boxes=boxes, primary=("ir", "vi"), box_suffix=".txt")

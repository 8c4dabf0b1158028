"""Plain paired folders without annotations, e.g. TNO, RoadScene, M3FD_Fusion, or any registered set::

    ROOT/                           split "all" (default)
    ├── ir/<name>.png               any of .png .jpg .jpeg .bmp .tif .tiff; names pair by stem
    └── vi/<name>.jpg

    ROOT/                           any other split S
    └── S/
        ├── ir/
        └── vi/

``ir_dir`` and ``vi_dir`` rename the two folders (RoadScene's own release: ``ir_dir="cropinfrared",
vi_dir="crop_LR_visible"``; M3FD_Fusion: ``ir_dir="Ir", vi_dir="Vis"``). ``yolo_labels`` names a folder of
YOLO text boxes, one ``<name>.txt`` per pair (relative to the split's folder, or absolute; ``yolo.py``), whose
``classes.txt`` (in it or its parent) becomes the layout's classes: the pairs are then a detection set.
"""

from __future__ import annotations

import os
from pathlib import Path

from taskfuse.data.datasets.base import DATASETS, PairedDataset, Record, scan_folders
from taskfuse.data.datasets.yolo import yolo_classes
from taskfuse.errors import TaskfuseError


@DATASETS.register("paired")
class PairedFolders(PairedDataset):
    """Unlabelled IR/VIS pairs from ``ROOT/<ir_dir>`` and ``ROOT/<vi_dir>`` (or ``ROOT/<split>/...``)."""

    layout = "paired"
    splits = ("all",)
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
        base = self.root if self.split == "all" else self.root / self.split
        if not (base / self.ir_dir).is_dir():
            splits = sorted(p.name for p in self.root.iterdir() if (p / self.ir_dir).is_dir())
            hint = f"; splits found: {', '.join(splits)}" if splits else ""
            raise TaskfuseError(
                f"{base / self.ir_dir}: no such folder; the paired layout needs {self.ir_dir}/ and {self.vi_dir}/ "
                f"side by side (pass ir_dir=/vi_dir= for other names){hint}"
            )
        boxes = None
        if self.yolo_labels is not None and self.labels:
            boxes = base / Path(self.yolo_labels)
            self.classes = yolo_classes(boxes)
            self.annotations = "boxes"
        folders = {"ir": base / self.ir_dir, "vi": base / self.vi_dir}
        return scan_folders(folders, boxes=boxes, primary=("ir", "vi"), box_suffix=".txt")

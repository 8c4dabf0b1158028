"""MSRS (Tang et al., PIAFusion, Information Fusion 2022), as published at github.com/Linfeng-Tang/MSRS::

    MSRS/
    ├── train/                      1083 pairs
    │   ├── ir/00001D.png           infrared, 480x640 (D = day, N = night)
    │   ├── vi/00001D.png           visible RGB
    │   └── Segmentation_labels/00001D.png   class indices 0..8 (MFNet classes)
    └── test/                       361 pairs, same folders

The repository's other folders (``Segmentation_visualize`` written by its ``visualize.py``, and
``detection/{ir,vi,labels}`` with YOLO boxes for 80 pairs) are not read. ``yolo_labels`` adds YOLO text boxes
to the segmentation samples: a folder of ``<name>.txt`` files relative to ``<split>/`` (or absolute) with a
``classes.txt`` in it or its parent, whose classes are the reader's ``box_classes`` (``yolo.py``); the 301 test
pairs with person / bicycle / car boxes have a layout of their own, ``msrs_det``.
"""

from __future__ import annotations

import os
from pathlib import Path

from taskfuse.data.classes import MSRS
from taskfuse.data.datasets.base import DATASETS, PairedDataset, Record, scan_folders
from taskfuse.data.datasets.yolo import yolo_classes


@DATASETS.register("msrs")
class MSRSDataset(PairedDataset):
    """MSRS segmentation pairs: ``<split>/ir``, ``<split>/vi`` and ``<split>/Segmentation_labels``."""

    layout = "msrs"
    annotations = "label"
    splits = ("train", "test")
    classes = MSRS

    def __init__(
        self,
        root: str | os.PathLike,
        split: str | None = None,
        *,
        yolo_labels: str | os.PathLike | None = None,
        labels: bool = True,
        ir_range: str = "auto",
        skip_incomplete: bool = False,
    ) -> None:
        self.yolo_labels = yolo_labels
        super().__init__(root, split, labels=labels, ir_range=ir_range, skip_incomplete=skip_incomplete)

    def scan(self) -> tuple[list[Record], list[str]]:
        self.check_split(self.splits)
        base = self.root / self.split
        folders = {"ir": base / "ir", "vi": base / "vi"}
        if self.labels:
            folders["label"] = base / "Segmentation_labels"
        if self.yolo_labels is None or not self.labels:
            return scan_folders(folders)
        boxes = base / Path(self.yolo_labels)
        self.box_classes = yolo_classes(boxes)
        return scan_folders(folders, boxes=boxes, primary=("ir", "vi"), box_suffix=".txt")

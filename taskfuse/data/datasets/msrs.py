"""MSRS (Tang et al., PIAFusion, Information Fusion 2022), as published at github.com/Linfeng-Tang/MSRS::

    MSRS/
    ├── train/                      1083 pairs
    │   ├── ir/00001D.png           infrared, 480x640 (D = day, N = night)
    │   ├── vi/00001D.png           visible RGB
    │   └── Segmentation_labels/00001D.png   class indices 0..8 (MFNet classes)
    └── test/                       361 pairs, same folders

The repository's other folders (``Segmentation_visualize`` written by its ``visualize.py``, and
``detection/{ir,vi,labels}`` with YOLO boxes for 80 pairs) are not read.
"""

from __future__ import annotations

from taskfuse.data.classes import MSRS
from taskfuse.data.datasets.base import DATASETS, PairedDataset, Record, scan_folders


@DATASETS.register("msrs")
class MSRSDataset(PairedDataset):
    """MSRS segmentation pairs: ``<split>/ir``, ``<split>/vi`` and ``<split>/Segmentation_labels``."""

    layout = "msrs"
    annotations = "label"
    splits = ("train", "test")
    classes = MSRS

    def scan(self) -> tuple[list[Record], list[str]]:
        self.check_split(self.splits)
        base = self.root / self.split
        folders = {"ir": base / "ir", "vi": base / "vi"}
        if self.labels:
            folders["label"] = base / "Segmentation_labels"
        return scan_folders(folders)

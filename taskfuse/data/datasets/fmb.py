"""FMB (Liu et al., SegMiF, ICCV 2023), as distributed from github.com/JinyuanLiu-CV/SegMiF::

    FMB/
    ├── train/                      1220 pairs, 800x600
    │   ├── Infrared/00001.png
    │   ├── Visible/00001.png
    │   ├── Label/00001.png         class indices 0..14 (0 = unlabelled)
    │   └── color/00001.png         coloured labels (visualisation, not read)
    └── test/                       280 pairs, same folders

Folder names and the 15-class palette follow loaders that read this download (e.g. Road-Former's
``mmfmb.py`` config: ``train/Visible``, ``train/Infrared``, ``train/Label``).
"""

from __future__ import annotations

from taskfuse.data.classes import FMB
from taskfuse.data.datasets.base import DATASETS, PairedDataset, Record, scan_folders


@DATASETS.register("fmb")
class FMBDataset(PairedDataset):
    """FMB segmentation pairs: ``<split>/Infrared``, ``<split>/Visible`` and ``<split>/Label``."""

    layout = "fmb"
    annotations = "label"
    splits = ("train", "test")
    classes = FMB

    def scan(self) -> tuple[list[Record], list[str]]:
        self.check_split(self.splits)
        base = self.root / self.split
        folders = {"ir": base / "Infrared", "vi": base / "Visible"}
        if self.labels:
            folders["label"] = base / "Label"
        return scan_folders(folders)

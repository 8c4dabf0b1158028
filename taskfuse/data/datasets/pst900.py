"""PST900 RGB-T (Shivakumar et al., ICRA 2020), as published at github.com/ShreyasSkandanS/pst900_thermal_rgb::

    PST900_RGBT_Dataset/
    ├── train/                      1280x720
    │   ├── rgb/<name>.png          visible RGB
    │   ├── thermal/<name>.png      thermal, FLIR AGC 8-bit, projected into the RGB camera (0 = no data)
    │   ├── thermal_raw/<name>.png  thermal, raw 16-bit
    │   ├── depth/<name>.png        stereo depth (not read)
    │   └── labels/<name>.png       class indices 0..4
    └── test/                       same folders

``thermal="thermal_raw"`` reads the 16-bit images instead (scaled by ``ir_range``, default min-max).
"""

from __future__ import annotations

import os

from taskfuse.data.classes import PST900
from taskfuse.data.datasets.base import DATASETS, PairedDataset, Record, scan_folders
from taskfuse.errors import TaskfuseError


@DATASETS.register("pst900")
class PST900Dataset(PairedDataset):
    """PST900 segmentation pairs: ``<split>/thermal`` (or ``thermal_raw``), ``<split>/rgb``, ``<split>/labels``."""

    layout = "pst900"
    annotations = "label"
    splits = ("train", "test")
    classes = PST900

    def __init__(
        self,
        root: str | os.PathLike,
        split: str | None = None,
        *,
        thermal: str = "thermal",
        labels: bool = True,
        ir_range: str = "auto",
        skip_incomplete: bool = False,
    ) -> None:
        if thermal not in ("thermal", "thermal_raw"):
            raise TaskfuseError(f"pst900 thermal={thermal!r}: use 'thermal' (8-bit AGC) or 'thermal_raw' (16-bit)")
        self.thermal = thermal
        super().__init__(root, split, labels=labels, ir_range=ir_range, skip_incomplete=skip_incomplete)

    def scan(self) -> tuple[list[Record], list[str]]:
        self.check_split(self.splits)
        base = self.root / self.split
        folders = {"ir": base / self.thermal, "vi": base / "rgb"}
        if self.labels:
            folders["label"] = base / "labels"
        return scan_folders(folders)

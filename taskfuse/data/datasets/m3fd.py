"""M3FD (Liu et al., TarDAL, CVPR 2022), the ``M3FD_Detection`` download of github.com/JinyuanLiu-CV/TarDAL::

    M3FD_Detection/
    ├── Ir/00000.png                4200 pairs, 1024x768 (infrared stored as 3 equal channels)
    ├── Vis/00000.png
    ├── Annotation/00000.xml        VOC boxes: People, Car, Bus, Lamp, Motorcycle, Truck
    └── meta/train.txt, val.txt     optional split lists (one name per line, as TarDAL writes them)

M3FD publishes no split: ``split="all"`` (the default) reads every annotated pair, any other split reads the
names in ``meta/<split>.txt``. The unannotated ``M3FD_Fusion`` download (``Ir/``, ``Vis/``) is read with the
``paired`` layout: ``open_dataset("paired", root, ir_dir="Ir", vi_dir="Vis")``.
"""

from __future__ import annotations

from pathlib import Path

from taskfuse.data.classes import M3FD
from taskfuse.data.datasets.base import DATASETS, PairedDataset, Record, scan_folders


@DATASETS.register("m3fd")
class M3FDDataset(PairedDataset):
    """M3FD detection pairs: ``Ir/``, ``Vis/`` and ``Annotation/``; splits from ``meta/<split>.txt``."""

    layout = "m3fd"
    annotations = "boxes"
    splits = ("all",)
    default_split = "all"
    classes = M3FD

    def scan(self) -> tuple[list[Record], list[str]]:
        stems = None
        if self.split != "all":
            lists = sorted(p.stem for p in (self.root / "meta").glob("*.txt"))
            self.check_split(["all", *lists])
            text = (self.root / "meta" / f"{self.split}.txt").read_text()
            stems = [Path(line.strip()).stem for line in text.splitlines() if line.strip()]
        folders = {"ir": self.root / "Ir", "vi": self.root / "Vis"}
        boxes = self.root / "Annotation" if self.labels else None
        return scan_folders(folders, boxes=boxes, stems=stems)

"""LLVIP (Jia et al., ICCV 2021), as published via github.com/bupt-ai-cz/LLVIP::

    LLVIP/
    ├── infrared/
    │   ├── train/010001.jpg        1280x1024
    │   └── test/190001.jpg
    ├── visible/
    │   ├── train/010001.jpg
    │   └── test/190001.jpg
    └── Annotations/010001.xml      VOC boxes of class ``person``, one file per pair, both splits

The folder names are those of the repository's README and ``toolbox/xml2txt_yolov5.py``.
"""

from __future__ import annotations

from taskfuse.data.classes import LLVIP
from taskfuse.data.datasets.base import DATASETS, PairedDataset, Record, scan_folders


@DATASETS.register("llvip")
class LLVIPDataset(PairedDataset):
    """LLVIP pedestrian-detection pairs: ``infrared/<split>``, ``visible/<split>`` and ``Annotations/``."""

    layout = "llvip"
    annotations = "boxes"
    splits = ("train", "test")
    classes = LLVIP

    def scan(self) -> tuple[list[Record], list[str]]:
        self.check_split(self.splits)
        folders = {"ir": self.root / "infrared" / self.split, "vi": self.root / "visible" / self.split}
        boxes = self.root / "Annotations" if self.labels else None
        return scan_folders(folders, boxes=boxes, primary=("ir", "vi"))

"""A minimal reader of the labelled MSRS detection pairs (``shared/data/msrs_det``) for
``scripts/pretrained_vs_scratch.sh`` on installs without the ``msrs_det`` layout, registered as ``msrs_det_yolo``
(``taskfuse --import msrs_det_yolo`` with ``scripts/`` on ``PYTHONPATH``).

Layout: ``ir/NAME.png``, ``vi/NAME.png``, ``labels/fusion/NAME.txt`` with YOLO lines ``class cx cy w h``
normalised to [0, 1] (classes 0 person, 1 bicycle, 2 car; an empty file has no object). Split, fixed by name:
the pairs sorted by name, every fifth (the 5th, 10th, ...) is ``val``, the rest ``train``; the environment
variable ``MSRS_DET_LIMIT=N`` keeps the first N pairs of a split (the CPU smoke run). This split is not the
``msrs_det`` layout's, so figures made with it are not comparable with that layout's.
"""

from __future__ import annotations

import os

import numpy as np

from taskfuse.data.classes import ClassSet
from taskfuse.data.datasets.base import DATASETS, PairedDataset, Record
from taskfuse.data.datasets.voc import BoxTable
from taskfuse.data.pairs import list_images
from taskfuse.errors import TaskfuseError

CLASSES = ClassSet(names=("person", "bicycle", "car"), palette=((255, 0, 0), (0, 255, 0), (0, 0, 255)))
WIDTH, HEIGHT = 640, 480


@DATASETS.register("msrs_det_yolo")
class MSRSDetYolo(PairedDataset):
    """MSRS pairs with the ``labels/fusion`` YOLO boxes; splits ``train`` and ``val`` (every fifth name)."""

    layout = "msrs_det_yolo"
    annotations = "boxes"
    splits = ("train", "val")
    classes = CLASSES

    def scan(self) -> tuple[list[Record], list[str]]:
        self.check_split(self.splits)
        names = sorted(list_images(self.root / "ir"))
        chosen = [n for i, n in enumerate(names) if (i % 5 == 4) == (self.split == "val")]
        limit = int(os.environ.get("MSRS_DET_LIMIT", "0"))
        chosen = chosen[:limit] if limit > 0 else chosen
        folders = {"ir": self.root / "ir", "vi": self.root / "vi", "boxes": self.root / "labels" / "fusion"}
        records = [
            Record(n, folders["ir"] / f"{n}.png", folders["vi"] / f"{n}.png", boxes=folders["boxes"] / f"{n}.txt")
            for n in chosen
        ]
        return records, []

    def read_boxes(self, rec: Record) -> BoxTable:
        """Boxes (N, 5) [class, x1, y1, x2, y2] in pixels of the 640 x 480 MSRS images."""
        assert rec.boxes is not None
        rows = []
        for line in rec.boxes.read_text().splitlines():
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 5 or fields[0] not in ("0", "1", "2"):
                raise TaskfuseError(f"{rec.boxes}: line {line!r} is not 'class cx cy w h' with class 0, 1 or 2")
            c, cx, cy, w, h = (float(v) for v in fields)
            rows.append([c, (cx - w / 2) * WIDTH, (cy - h / 2) * HEIGHT, (cx + w / 2) * WIDTH, (cy + h / 2) * HEIGHT])
        return BoxTable(np.asarray(rows, dtype=np.float32).reshape(-1, 5))

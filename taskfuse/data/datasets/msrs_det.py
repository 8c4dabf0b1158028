"""MSRS pairs with person / bicycle / car boxes (``msrs_det``): real registered pairs labelled for detection::

    ROOT/
    ├── ir/00004N.png               infrared, 640x480 (names end in D = day, N = night)
    ├── vi/00004N.png               visible RGB
    └── labels/
        ├── classes.txt             0 person, 1 bicycle, 2 car
        ├── fusion/00004N.txt       YOLO text boxes drawn on a fused image: the ground truth by default
        ├── infrared/00004N.txt     drawn on the infrared image
        └── visible/00004N.txt      drawn on the visible image

The label files are YOLO text (``yolo.py``: ``class cx cy w h`` normalised, any whitespace between fields, an
empty file for an image without objects). ``labels`` picks the annotation set: ``True`` or ``"fusion"`` (the set
drawn for judging fused images), ``"infrared"``, ``"visible"``, or ``False`` for the image pairs alone.

The set has no published split, so taskfuse fixes one by name (``split_of``): a pair is in ``val`` when the
SHA-256 of ``"msrs_det/<name>"``, read as a fraction of 1, is below ``VAL_FRACTION``, else in ``train``; ``all``
is both. The rule looks at one name at a time, so pairs added to the folder later fall into one side without
moving any other, and it treats day and night names alike, so both conditions are in both splits in about the
same proportion. On the 301 published pairs it gives train 239 (122 day, 117 night) and val 62 (27 day,
35 night). Nothing is trained on ``val``: it is where downstream scores are measured.
"""

from __future__ import annotations

import hashlib
import os

from taskfuse.data.classes import MSRS_DET
from taskfuse.data.datasets.base import DATASETS, PairedDataset, Record, scan_folders
from taskfuse.data.datasets.yolo import CLASSES_FILE, read_classes
from taskfuse.data.pairs import list_images
from taskfuse.errors import TaskfuseError

ANNOTATION_SETS = ("fusion", "infrared", "visible")
"""The three box sets, by the image the boxes were drawn on."""
VAL_FRACTION = 0.2
"""Share of the names that ``split_of`` puts into ``val``."""
SPLIT_KEY = "msrs_det/"
"""Prefix of every name before hashing (changing it would move every pair)."""


def split_of(name: str) -> str:
    """``"val"`` or ``"train"`` for a pair name (module docstring).

    >>> split_of("00004N"), split_of("00008N")
    ('train', 'val')
    """
    fraction = int(hashlib.sha256(f"{SPLIT_KEY}{name}".encode()).hexdigest()[:12], 16) / 16**12
    return "val" if fraction < VAL_FRACTION else "train"


def condition(name: str) -> str:
    """``"day"`` or ``"night"`` from the last letter of an MSRS name (D / N), else ``"unknown"``."""
    return {"D": "day", "N": "night"}.get(name[-1:].upper(), "unknown")


@DATASETS.register("msrs_det")
class MSRSDetDataset(PairedDataset):
    """MSRS detection pairs: ``ir/``, ``vi/`` and YOLO boxes in ``labels/<set>/``; splits fixed by name."""

    layout = "msrs_det"
    annotations = "boxes"
    splits = ("train", "val", "all")
    default_split = "all"
    classes = MSRS_DET

    def __init__(
        self,
        root: str | os.PathLike,
        split: str | None = None,
        *,
        labels: bool | str = True,
        ir_range: str = "auto",
        skip_incomplete: bool = False,
    ) -> None:
        if labels is True:
            labels = ANNOTATION_SETS[0]
        if labels is not False and labels not in ANNOTATION_SETS:
            raise TaskfuseError(
                f"msrs_det labels={labels!r}: choose one of {', '.join(ANNOTATION_SETS)}, True (= fusion) or False"
            )
        self.annotation_set = labels or ""
        super().__init__(root, split, labels=bool(labels), ir_range=ir_range, skip_incomplete=skip_incomplete)

    def scan(self) -> tuple[list[Record], list[str]]:
        self.check_split(self.splits)
        names = [n for n in list_images(self.root / "ir") if self.split == "all" or split_of(n) == self.split]
        folders = {"ir": self.root / "ir", "vi": self.root / "vi"}
        boxes = None
        if self.labels:
            boxes = self.root / "labels" / self.annotation_set
            self.check_classes()
        return scan_folders(folders, boxes=boxes, stems=names, box_suffix=".txt")

    def check_classes(self) -> None:
        """A ``labels/classes.txt`` present must list this layout's classes in order (indices are read as them)."""
        path = self.root / "labels" / CLASSES_FILE
        if path.is_file() and read_classes(path) != MSRS_DET.names:
            raise TaskfuseError(
                f"{path} lists {', '.join(read_classes(path))}; msrs_det boxes are {', '.join(MSRS_DET.names)} "
                "(class 0, 1, 2). Read other classes with the paired layout and yolo_labels="
            )

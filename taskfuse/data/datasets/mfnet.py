"""MFNet (Ha et al., IROS 2017), the ``ir_seg_dataset`` release, as read by MFNet-pytorch and RTFNet's
``util/MF_dataset.py``::

    ir_seg_dataset/
    ├── images/00001D.png           4 channels, 480x640: R, G, B, thermal (D = day, N = night)
    ├── labels/00001D.png           class indices 0..8
    ├── train.txt                   one name per line, no extension
    ├── val.txt
    ├── test.txt
    └── test_day.txt, test_night.txt, val_test.txt    extra lists in RTFNet's re-packaged copy

Any ``<split>.txt`` in the root is a split. Without ``test_day.txt`` / ``test_night.txt`` those splits are
taken from ``test.txt`` by the D / N suffix of the names.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from taskfuse.data.classes import MFNET
from taskfuse.data.datasets.base import DATASETS, PairedDataset, Record, join_stems
from taskfuse.data.io import read_image, scale_ir
from taskfuse.data.pairs import list_images
from taskfuse.errors import TaskfuseError

_DAY_NIGHT = {"test_day": "D", "test_night": "N"}


@DATASETS.register("mfnet")
class MFNetDataset(PairedDataset):
    """MFNet segmentation samples: RGB + thermal in one 4-channel PNG, labels, and ``<split>.txt`` lists."""

    layout = "mfnet"
    annotations = "label"
    splits = ("train", "val", "test", "test_day", "test_night")
    classes = MFNET

    def split_names(self) -> list[str]:
        lists = sorted(p.stem for p in self.root.glob("*.txt"))
        source = self.split
        if self.split not in lists and self.split in _DAY_NIGHT and "test" in lists:
            source = "test"
        self.check_split(sorted({*lists, *(_DAY_NIGHT if "test" in lists else ())}))
        names = [ln.strip() for ln in (self.root / f"{source}.txt").read_text().splitlines() if ln.strip()]
        if source != self.split:
            names = [n for n in names if n.endswith(_DAY_NIGHT[self.split])]
        return names

    def scan(self) -> tuple[list[Record], list[str]]:
        names = self.split_names()
        listed = {"image": list_images(self.root / "images")}
        where = {"image": self.root / "images"}
        if self.labels:
            listed["label"] = list_images(self.root / "labels")
            where["label"] = self.root / "labels"
        complete, missing = join_stems(listed, where, stems=names)
        records = [Record(n, g["image"], g["image"], g.get("label")) for n, g in complete.items()]
        return records, missing

    def image_files(self, rec: Record) -> dict[str, Path]:
        return {"image": rec.ir}

    def read_images(self, rec: Record) -> tuple[Tensor, Tensor]:
        arr = read_image(rec.ir)
        if arr.ndim != 3 or arr.shape[2] != 4:
            raise TaskfuseError(
                f"{rec.ir}: MFNet images hold 4 channels (R, G, B, thermal), this one has "
                f"{1 if arr.ndim == 2 else arr.shape[2]}; use the ir_seg_dataset release"
            )
        ir = torch.from_numpy(scale_ir(arr[..., 3], self.ir_range)).unsqueeze(0)
        rgb = arr[..., :3].astype(np.float32) / float(np.iinfo(arr.dtype).max)
        return ir, torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))

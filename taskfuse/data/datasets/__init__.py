"""Readers for the published layouts of IR/VIS datasets, behind one registry (one module per layout).

>>> from taskfuse.data.datasets import open_dataset
>>> from taskfuse.data.synthetic import write_scenes
>>> root = write_scenes("scenes", n_train=1, n_test=1, height=48, width=64)   # or a download of MSRS
>>> sample = open_dataset("msrs", root, split="test")[0]
>>> sample["ir"].shape, sample["vi"].shape, sample["label"].shape
(torch.Size([1, 48, 64]), torch.Size([3, 48, 64]), torch.Size([48, 64]))

The layouts, their sources and the sample dict are described in docs/datasets.md and in ``base``.
"""

from __future__ import annotations

import inspect
import os
from typing import Any

from taskfuse.data.datasets import (  # noqa: F401  (each module registers its layout)
    coco_keypoints,
    fmb,
    llvip,
    m3fd,
    mfnet,
    msrs,
    msrs_det,
    paired,
    pst900,
)
from taskfuse.data.datasets.base import DATASETS, PairedDataset, Record
from taskfuse.errors import TaskfuseError


def open_dataset(name: str, root: str | os.PathLike, split: str | None = None, **kw: Any) -> PairedDataset:
    """Open the dataset at ``root`` in the layout registered as ``name``.

    ``split`` None takes the layout's default split (``train``, or ``all`` for layouts without splits);
    keyword arguments are the reader's options (``ir_range``, ``skip_incomplete``, and per layout ones).
    """
    cls = DATASETS.get(name)
    try:
        inspect.signature(cls).bind(root, split, **kw)
    except TypeError as e:
        options = [p for p in inspect.signature(cls).parameters if p not in ("root", "split")]
        raise TaskfuseError(f"dataset {name!r}: {e}; its options are {', '.join(options)}") from e
    return cls(root, split, **kw)


def names() -> list[str]:
    return DATASETS.names()


__all__ = ["DATASETS", "PairedDataset", "Record", "names", "open_dataset"]

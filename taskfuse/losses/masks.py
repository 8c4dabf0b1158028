"""Foreground (salient-object) masks for the mask-weighted fusion losses, from whatever a dataset provides.

FGFusion (seed 003) needs only "foreground object masks as auxiliary supervision", so any labelled dataset can
train it: semantic labels give the mask from a set of object classes, detection boxes from the box interiors.
DSIFuse (seed 004) uses the same kind of binary mask ``M_label`` in its intensity loss.

PSFusion (seed 001) and MAFS (seed 002) supervise binary (foreground) and boundary heads. The papers train with
precomputed maps; here they come from the semantic label:

* binary target: 1 where the label is any class other than 0 (``unlabelled`` background in MSRS/MFNet), 0 on
  background, ``ignore_index`` kept;
* boundary target: the morphological gradient of the label map, 1 where a k x k neighbourhood holds more than
  one class (max-pool != min-pool; k = 3 marks a two-pixel band along every class border), computed over
  labelled pixels only, ``ignore_index`` kept.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from taskfuse.data.classes import IGNORE_INDEX
from taskfuse.errors import TaskfuseError


def foreground_from_labels(
    label: Tensor, object_classes: Sequence[int] | None = None, ignore_index: int = IGNORE_INDEX
) -> Tensor:
    """(B, H, W) class indices -> (B, 1, H, W) float mask, 1 on pixels of ``object_classes``.

    ``None`` counts every class except 0 (background / unlabelled) as an object; ``ignore_index`` pixels are 0.
    """
    if object_classes is None:
        fg = (label != 0) & (label != ignore_index)
    else:
        classes = torch.tensor(list(object_classes), dtype=label.dtype).to(label.device, non_blocking=True)
        fg = torch.isin(label, classes)
    return fg.unsqueeze(1).float()


def foreground_from_boxes(boxes: Tensor, h: int, w: int) -> Tensor:
    """(N, 5) boxes ``[class, x1, y1, x2, y2]`` in pixels -> (1, h, w) float mask, 1 inside any box.

    A box covers columns ``floor(x1) .. ceil(x2) - 1`` and rows ``floor(y1) .. ceil(y2) - 1``, clipped to the
    image; the class column is not used. An empty (0, 5) tensor gives an all-zero mask. Computed on the boxes'
    device by comparing pixel coordinates with every box, so no coordinate is read back to the host.
    """
    if boxes.dim() != 2 or boxes.shape[1] != 5:
        raise TaskfuseError(f"boxes must be (N, 5) [class, x1, y1, x2, y2], got {tuple(boxes.shape)}")
    x1, y1, x2, y2 = boxes[:, 1:].unbind(1)
    cols = torch.arange(w, device=boxes.device)
    rows = torch.arange(h, device=boxes.device)
    in_cols = (cols >= x1.floor()[:, None]) & (cols < x2.ceil()[:, None])
    in_rows = (rows >= y1.floor()[:, None]) & (rows < y2.ceil()[:, None])
    return (in_rows[:, :, None] & in_cols[:, None, :]).any(0, keepdim=True).float()


def batch_foreground(batch: Mapping[str, Any], object_classes: Sequence[int] | None = None) -> Tensor | None:
    """The (B, 1, H, W) foreground mask of a training batch: from ``label`` when present, else from ``boxes``
    (a list of (N, 5) tensors, one per image), else None."""
    ir: Tensor = batch["ir"]
    if batch.get("label") is not None:
        return foreground_from_labels(batch["label"], object_classes).to(ir.dtype)
    boxes = batch.get("boxes")
    if boxes is None:
        return None
    if len(boxes) != ir.shape[0]:
        raise TaskfuseError(f"batch['boxes'] holds {len(boxes)} entries for {ir.shape[0]} images; give one per image")
    h, w = ir.shape[-2:]
    return torch.stack([foreground_from_boxes(b.to(ir.device), h, w) for b in boxes]).to(ir.dtype)


BINARY_WEIGHTS = (1.4548, 19.8962)
"""Background / foreground weights of the binary cross-entropy, from the authors' ``train.py``."""


def binary_target(label: Tensor, ignore_index: int = IGNORE_INDEX) -> Tensor:
    """(B, H, W) int64: 1 on labelled foreground (class != 0), 0 on background, ``ignore_index`` kept."""
    target = (label != 0).long()
    return torch.where(label == ignore_index, torch.full_like(label, ignore_index), target)


def boundary_target(label: Tensor, kernel: int = 3, ignore_index: int = IGNORE_INDEX) -> Tensor:
    """(B, H, W) int64: 1 where the k x k neighbourhood of a labelled pixel holds two or more classes."""
    ignored = label == ignore_index
    lab = label.float().unsqueeze(1)
    big = float(ignore_index) + 1.0
    hi = F.max_pool2d(lab.masked_fill(ignored.unsqueeze(1), -1.0), kernel, 1, kernel // 2)
    lo = -F.max_pool2d(-lab.masked_fill(ignored.unsqueeze(1), big), kernel, 1, kernel // 2)
    target = (hi != lo).squeeze(1).long()
    return torch.where(ignored, torch.full_like(label, ignore_index), target)

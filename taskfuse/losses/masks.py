"""Foreground (salient-object) masks for the mask-weighted fusion losses, from whatever a dataset provides.

FGFusion (seed 003) needs only "foreground object masks as auxiliary supervision", so any labelled dataset can
train it: semantic labels give the mask from a set of object classes, detection boxes from the box interiors.
DSIFuse (seed 004) uses the same kind of binary mask ``M_label`` in its intensity loss.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
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
        fg = torch.isin(label, torch.as_tensor(list(object_classes), dtype=label.dtype, device=label.device))
    return fg.unsqueeze(1).float()


def foreground_from_boxes(boxes: Tensor, h: int, w: int) -> Tensor:
    """(N, 5) boxes ``[class, x1, y1, x2, y2]`` in pixels -> (1, h, w) float mask, 1 inside any box.

    A box covers columns ``floor(x1) .. ceil(x2) - 1`` and rows ``floor(y1) .. ceil(y2) - 1``, clipped to the
    image; the class column is not used. An empty (0, 5) tensor gives an all-zero mask.
    """
    if boxes.dim() != 2 or boxes.shape[1] != 5:
        raise TaskfuseError(f"boxes must be (N, 5) [class, x1, y1, x2, y2], got {tuple(boxes.shape)}")
    mask = torch.zeros(1, h, w, device=boxes.device)
    for _, x1, y1, x2, y2 in boxes.tolist():
        c0, r0 = max(int(x1 // 1), 0), max(int(y1 // 1), 0)
        c1, r1 = min(int(-(-x2 // 1)), w), min(int(-(-y2 // 1)), h)
        mask[:, r0:r1, c0:c1] = 1.0
    return mask


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

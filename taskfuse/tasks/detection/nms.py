"""Box overlap and class-wise greedy non-maximum suppression in plain torch (no torchvision).

Boxes are ``x1, y1, x2, y2`` in pixels. NMS is the classic greedy rule: visit boxes by descending score, keep a
box unless it overlaps an already kept box of the same class by IoU > ``iou_thresh`` (torchvision's
``batched_nms`` semantics, which the YOLOX post-processing calls).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

_ROWS = 2048


def box_iou(a: Tensor, b: Tensor) -> Tensor:
    """(..., N, M) IoU of xyxy boxes ``a`` (..., N, 4) and ``b`` (..., M, 4), leading dimensions a batch; 0 where
    the union is empty."""
    lt = torch.maximum(a[..., :, None, :2], b[..., None, :, :2])
    rb = torch.minimum(a[..., :, None, 2:], b[..., None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area_a = (a[..., 2:] - a[..., :2]).clamp(min=0).prod(-1)
    area_b = (b[..., 2:] - b[..., :2]).clamp(min=0).prod(-1)
    union = area_a[..., :, None] + area_b[..., None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=torch.finfo(union.dtype).tiny), torch.zeros_like(inter))


def batched_nms(boxes: Tensor, scores: Tensor, classes: Tensor, iou_thresh: float) -> Tensor:
    """Indices into ``boxes`` (N, 4) of the boxes kept by class-wise greedy NMS, by descending score.

    Boxes of different ``classes`` (N,) never suppress each other. The overlap matrix is built in blocks of
    rows, so memory stays at N * N bytes; the greedy pass then runs over the kept boxes only.
    """
    n = boxes.shape[0]
    if n == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    order = scores.argsort(descending=True, stable=True)
    boxes, classes = boxes[order].float(), classes[order]
    over = torch.empty(n, n, dtype=torch.bool, device=boxes.device)
    for start in range(0, n, _ROWS):
        rows = slice(start, start + _ROWS)
        same = classes[rows, None] == classes[None]
        over[rows] = (box_iou(boxes[rows], boxes) > iou_thresh) & same
    over_np = over.cpu().numpy()
    alive = np.ones(n, dtype=bool)
    keep = []
    for i in range(n):
        if alive[i]:
            keep.append(i)
            alive[i + 1 :] &= ~over_np[i, i + 1 :]
    return order[torch.as_tensor(keep, dtype=torch.long, device=order.device)]

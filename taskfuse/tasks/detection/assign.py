"""SimOTA dynamic label assignment (YOLOX, Ge et al. 2021, Sec. 2.1 "SimOTA").

For one image, every ground-truth box g_i picks its positives among the anchor points j:

1. Centre prior: a point is a candidate when its cell centre lies inside some ground-truth box or within
   ``radius`` strides of its centre; pairs whose point lies in both the box and that centre region are preferred
   (the others carry a prohibitive extra cost), which is the "fixed center region" of the paper.
2. Cost, Eq. (1): c_ij = L^cls_ij + lambda * L^reg_ij with lambda = 3, where L^cls is the binary cross-entropy
   of sqrt(sigmoid(cls) * sigmoid(obj)) against g_i's one-hot class (summed over classes) and L^reg = -log IoU
   of the point's predicted box with g_i.
3. Dynamic k (from OTA): k_i = max(1, floor(sum of the 10 largest IoUs of g_i)); g_i takes its k_i cheapest
   points.
4. A point taken by several boxes keeps only the one it costs least.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from taskfuse.tasks.detection.nms import box_iou

IOU_WEIGHT = 3.0
CANDIDATES = 10
CENTRE_RADIUS = 2.5
OUTSIDE_COST = 1e5


@dataclass
class Assignment:
    """``fg`` (A,) bool: the positive points; ``gt_index`` (F,) and ``iou`` (F,): for each positive, in point
    order, the ground-truth box it is assigned and the IoU of its predicted box with that box."""

    fg: Tensor
    gt_index: Tensor
    iou: Tensor


def cxcywh_to_xyxy(b: Tensor) -> Tensor:
    return torch.cat([b[..., :2] - b[..., 2:] / 2, b[..., :2] + b[..., 2:] / 2], -1)


def _log(x: Tensor) -> Tensor:
    """log clamped at -100, as ``F.binary_cross_entropy`` clamps it."""
    return torch.log(x).clamp(min=-100.0)


@torch.no_grad()
def simota(
    boxes: Tensor,
    obj: Tensor,
    cls: Tensor,
    centres: Tensor,
    strides: Tensor,
    gt_boxes: Tensor,
    gt_classes: Tensor,
    radius: float = CENTRE_RADIUS,
) -> Assignment:
    """Assign the anchor points of one image to its ground truth.

    ``boxes`` (A, 4) predicted ``cx, cy, w, h`` pixels; ``obj`` (A,) and ``cls`` (A, C) logits; ``centres``
    (A, 2) cell centres and ``strides`` (A,); ``gt_boxes`` (G, 4) ``x1, y1, x2, y2`` with G >= 1 and
    ``gt_classes`` (G,) int64. Computed in float32 without gradients.
    """
    boxes, obj, cls = boxes.float(), obj.float(), cls.float()
    gt_boxes = gt_boxes.float()
    num_points = boxes.shape[0]

    cx, cy = centres[:, 0][None], centres[:, 1][None]
    in_box = (cx > gt_boxes[:, 0:1]) & (cx < gt_boxes[:, 2:3]) & (cy > gt_boxes[:, 1:2]) & (cy < gt_boxes[:, 3:4])
    gt_centre = (gt_boxes[:, :2] + gt_boxes[:, 2:]) / 2
    reach = radius * strides[None]
    in_centre = ((cx - gt_centre[:, 0:1]).abs() < reach) & ((cy - gt_centre[:, 1:2]).abs() < reach)
    candidate = (in_box | in_centre).any(0)
    cand_idx = candidate.nonzero().squeeze(1)
    empty = torch.zeros(0, dtype=torch.long, device=boxes.device)
    if cand_idx.numel() == 0:
        return Assignment(torch.zeros(num_points, dtype=torch.bool, device=boxes.device), empty, boxes.new_zeros(0))
    preferred = (in_box & in_centre)[:, cand_idx]

    ious = box_iou(gt_boxes, cxcywh_to_xyxy(boxes[cand_idx]))
    p = (cls[cand_idx].sigmoid() * obj[cand_idx, None].sigmoid()).sqrt()
    neg_all = -_log(1 - p).sum(1)
    p_gt = p[:, gt_classes].T
    cls_cost = neg_all[None] + _log(1 - p_gt) - _log(p_gt)
    cost = cls_cost + IOU_WEIGHT * -torch.log(ious + 1e-8) + OUTSIDE_COST * (~preferred).float()

    n_top = min(CANDIDATES, cand_idx.numel())
    k = ious.topk(n_top, dim=1).values.sum(1).int().clamp(min=1)
    rank = cost.argsort(dim=1, stable=True).argsort(dim=1)
    matching = rank < k[:, None]
    multiple = matching.sum(0) > 1
    if multiple.any():
        best = cost[:, multiple].argmin(0)
        matching[:, multiple] = F.one_hot(best, matching.shape[0]).T.bool()
    taken = matching.any(0)
    gt_index = matching[:, taken].float().argmax(0)
    fg = torch.zeros(num_points, dtype=torch.bool, device=boxes.device)
    fg[cand_idx[taken]] = True
    return Assignment(fg, gt_index, ious[gt_index, taken.nonzero().squeeze(1)])

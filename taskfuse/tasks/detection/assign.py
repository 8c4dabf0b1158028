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

The assignment runs on a whole batch at once, with every point of every image in every tensor (non-candidates
carry an infinite cost) and the images' boxes padded to the longest list: no shape depends on the data, so on a
GPU nothing is read back to the host and the training step never waits.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from taskfuse.tasks.detection.nms import box_iou

IOU_WEIGHT = 3.0
CANDIDATES = 10
CENTRE_RADIUS = 2.5
OUTSIDE_COST = 1e5


@dataclass
class Assignment:
    """``fg`` (B, A) bool: the positive points; ``gt_index`` (B, A) and ``iou`` (B, A): for each point the
    ground-truth box it is assigned and the IoU of its predicted box with that box (meaningful where ``fg``)."""

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
    gt_valid: Tensor | None = None,
    radius: float = CENTRE_RADIUS,
) -> Assignment:
    """Assign the anchor points of a batch of B images to their ground truth.

    ``boxes`` (B, A, 4) predicted ``cx, cy, w, h`` pixels; ``obj`` (B, A) and ``cls`` (B, A, C) logits;
    ``centres`` (A, 2) cell centres and ``strides`` (A,); ``gt_boxes`` (B, G, 4) ``x1, y1, x2, y2`` and
    ``gt_classes`` (B, G) int64; ``gt_valid`` (B, G) marks the real boxes (default: all), the others (padding)
    take no point. Computed in float32 without gradients.
    """
    boxes, obj, cls = boxes.float(), obj.float(), cls.float()
    gt_boxes = gt_boxes.float()
    valid = torch.ones(gt_classes.shape, dtype=torch.bool, device=boxes.device) if gt_valid is None else gt_valid
    num_boxes = gt_boxes.shape[1]

    cx, cy = centres[:, 0][None, None], centres[:, 1][None, None]
    x1, y1, x2, y2 = (gt_boxes[..., i : i + 1] for i in range(4))
    in_box = (cx > x1) & (cx < x2) & (cy > y1) & (cy < y2) & valid[..., None]
    reach = radius * strides[None, None]
    in_centre = ((cx - (x1 + x2) / 2).abs() < reach) & ((cy - (y1 + y2) / 2).abs() < reach) & valid[..., None]
    candidate = (in_box | in_centre).any(1, keepdim=True)
    preferred = in_box & in_centre

    ious = box_iou(gt_boxes, cxcywh_to_xyxy(boxes))
    p = (cls.sigmoid() * obj[..., None].sigmoid()).sqrt()
    neg_all = -_log(1 - p).sum(-1)
    p_gt = p.gather(2, gt_classes[:, None].expand(-1, p.shape[1], -1)).transpose(1, 2)
    cls_cost = neg_all[:, None] + _log(1 - p_gt) - _log(p_gt)
    cost = cls_cost + IOU_WEIGHT * -torch.log(ious + 1e-8) + OUTSIDE_COST * (~preferred).float()
    cost = cost.masked_fill(~(candidate & valid[..., None]), torch.inf)

    top = ious.masked_fill(~candidate, 0.0).topk(min(CANDIDATES, ious.shape[-1]), dim=-1).values
    k = top.sum(-1).int().clamp(min=1)
    rank = cost.argsort(dim=-1, stable=True).argsort(dim=-1)
    matching = (rank < k[..., None]) & candidate & valid[..., None]
    cheapest = torch.arange(num_boxes, device=boxes.device)[None, :, None] == cost.argmin(1, keepdim=True)
    matching = torch.where(matching.sum(1, keepdim=True) > 1, cheapest, matching)
    gt_index = matching.float().argmax(1)
    return Assignment(matching.any(1), gt_index, ious.gather(1, gt_index[:, None])[:, 0])

"""The YOLOX training loss (Ge et al. 2021, Sec. 2.1): after SimOTA assignment,

    L = 5 * L_box + L_obj + L_cls,

each summed over anchor points and divided by the number of positives in the batch (at least 1). ``L_box`` is
the IoU loss of the positives' boxes (``"iou"``: 1 - IoU^2, the official default; ``"giou"``: 1 - GIoU,
Rezatofighi et al. 2019), ``L_obj`` the binary cross-entropy of every point's objectness against "is positive",
``L_cls`` the binary cross-entropy of the positives' class logits against the one-hot class scaled by the IoU
of the predicted box with its ground truth (the IoU-aware target of the official implementation).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from taskfuse.errors import TaskfuseError
from taskfuse.losses.base import LossTerms
from taskfuse.tasks.detection.assign import simota
from taskfuse.tasks.detection.base import DetectionOutput

BOX_LOSSES = ("iou", "giou")
BOX_WEIGHT = 5.0


def box_loss(pred: Tensor, target: Tensor, kind: str = "iou") -> Tensor:
    """Per-pair loss of aligned ``cx, cy, w, h`` boxes (N, 4): 1 - IoU^2 (``"iou"``) or 1 - GIoU (``"giou"``)."""
    p_lt, p_rb = pred[:, :2] - pred[:, 2:] / 2, pred[:, :2] + pred[:, 2:] / 2
    t_lt, t_rb = target[:, :2] - target[:, 2:] / 2, target[:, :2] + target[:, 2:] / 2
    inter = (torch.minimum(p_rb, t_rb) - torch.maximum(p_lt, t_lt)).clamp(min=0).prod(1)
    union = pred[:, 2:].prod(1) + target[:, 2:].prod(1) - inter
    iou = inter / (union + 1e-16)
    if kind == "iou":
        return 1 - iou**2
    enclose = (torch.maximum(p_rb, t_rb) - torch.minimum(p_lt, t_lt)).prod(1)
    giou = iou - (enclose - union) / enclose.clamp(min=1e-16)
    return 1 - giou.clamp(-1.0, 1.0)


def check_targets(targets: Sequence[Tensor], batch: int, num_classes: int) -> list[Tensor]:
    """Targets as float32 (M, 5) ``[class, x1, y1, x2, y2]`` per image, boxes without area left out."""
    if len(targets) != batch:
        raise TaskfuseError(f"got targets for {len(targets)} images but the batch has {batch}")
    out = []
    for i, t in enumerate(targets):
        t = torch.as_tensor(t, dtype=torch.float32).reshape(-1, 5) if t.numel() else torch.zeros(0, 5)
        cls = t[:, 0]
        bad = (cls != cls.round()) | (cls < 0) | (cls >= num_classes)
        if bad.any():
            raise TaskfuseError(
                f"targets[{i}] has class values {sorted(set(cls[bad].tolist()))[:5]} outside 0..{num_classes - 1}; "
                "fix the labels or build the detector with more classes"
            )
        out.append(t[(t[:, 3] > t[:, 1]) & (t[:, 4] > t[:, 2])])
    return out


def yolox_loss(out: DetectionOutput, targets: Sequence[Tensor], num_classes: int, kind: str = "iou") -> LossTerms:
    """YOLOX loss of a batch; ``targets[i]`` (M, 5) ``[class, x1, y1, x2, y2]`` in input pixels (M may be 0).

    ``parts`` holds ``box`` (already weighted by 5), ``obj``, ``cls`` and ``fg_per_gt``, the mean number of
    positives SimOTA gave each ground-truth box (a training diagnostic, not a loss).
    """
    boxes = out.boxes()
    obj, cls = out.obj.float(), out.cls.float()
    device = boxes.device
    targets = [t.to(device) for t in check_targets(targets, boxes.shape[0], num_classes)]
    centres, strides = out.centres(), out.strides
    obj_target = torch.zeros_like(obj)
    pred_boxes, gt_boxes, cls_logits, cls_targets = [], [], [], []
    for b, t in enumerate(targets):
        if t.shape[0] == 0:
            continue
        gt_cls = t[:, 0].long()
        a = simota(boxes[b].detach(), obj[b].detach(), cls[b].detach(), centres, strides, t[:, 1:], gt_cls)
        obj_target[b, a.fg] = 1.0
        xyxy = t[a.gt_index, 1:]
        gt_boxes.append(torch.cat([(xyxy[:, :2] + xyxy[:, 2:]) / 2, xyxy[:, 2:] - xyxy[:, :2]], 1))
        pred_boxes.append(boxes[b][a.fg])
        cls_logits.append(cls[b][a.fg])
        cls_targets.append(F.one_hot(gt_cls[a.gt_index], num_classes).float() * a.iou[:, None])

    num_gt = sum(t.shape[0] for t in targets)
    num_fg = sum(p.shape[0] for p in pred_boxes)
    norm = max(num_fg, 1)
    loss_obj = F.binary_cross_entropy_with_logits(obj, obj_target, reduction="sum") / norm
    if pred_boxes:
        loss_box = box_loss(torch.cat(pred_boxes), torch.cat(gt_boxes), kind).sum() / norm
        loss_cls = F.binary_cross_entropy_with_logits(torch.cat(cls_logits), torch.cat(cls_targets), reduction="sum")
        loss_cls = loss_cls / norm
    else:
        loss_box = loss_cls = out.reg.sum() * 0.0 + out.cls.sum() * 0.0
    total = BOX_WEIGHT * loss_box + loss_obj + loss_cls
    parts = {
        "box": (BOX_WEIGHT * loss_box).detach(),
        "obj": loss_obj.detach(),
        "cls": loss_cls.detach(),
        "fg_per_gt": torch.tensor(num_fg / max(num_gt, 1)),
    }
    return LossTerms(total, parts)

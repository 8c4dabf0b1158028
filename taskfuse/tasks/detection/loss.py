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
from torch.nn.utils.rnn import pad_sequence

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


def batch_targets(
    targets: Sequence[Tensor], batch: int, num_classes: int, device: torch.device
) -> tuple[Tensor, Tensor]:
    """The targets of a batch as one float32 (B, G, 5) tensor ``[class, x1, y1, x2, y2]`` on ``device``, padded to
    the image with most boxes, and (B, G) ``valid``: a real box with an area (the others are left out of the loss).

    Class values must be whole numbers in 0..num_classes-1: checked on the device (a CPU run raises a
    ``TaskfuseError``, a GPU run stops at a device-side assertion), as reading them back would make every step wait.
    """
    if len(targets) != batch:
        raise TaskfuseError(f"got targets for {len(targets)} images but the batch has {batch}")
    boxes = [
        torch.as_tensor(t, dtype=torch.float32).to(device, non_blocking=True).reshape(-1, 5)
        if t.numel()
        else torch.zeros(0, 5, device=device)
        for t in targets
    ]
    padded = pad_sequence(boxes, batch_first=True)
    if padded.shape[1] == 0:
        return padded, torch.zeros(batch, 0, dtype=torch.bool, device=device)
    cls = padded[..., 0]
    bad = (cls != cls.round()) | (cls < 0) | (cls >= num_classes)
    try:
        torch._assert_async(~bad.any(), f"targets have class values outside 0..{num_classes - 1}")
    except RuntimeError as e:
        values = sorted(set(cls[bad].tolist()))[:5]
        raise TaskfuseError(f"{e}: {values}; fix the labels or build the detector with more classes") from e
    area = (padded[..., 3] > padded[..., 1]) & (padded[..., 4] > padded[..., 2])
    real = pad_sequence([torch.ones(len(b), dtype=torch.bool, device=device) for b in boxes], batch_first=True)
    return padded, area & real


def yolox_loss(out: DetectionOutput, targets: Sequence[Tensor], num_classes: int, kind: str = "iou") -> LossTerms:
    """YOLOX loss of a batch; ``targets[i]`` (M, 5) ``[class, x1, y1, x2, y2]`` in input pixels (M may be 0).

    ``parts`` holds ``box`` (already weighted by 5), ``obj``, ``cls`` and ``fg_per_gt``, the mean number of
    positives SimOTA gave each ground-truth box (a training diagnostic, not a loss). Every term is a masked sum
    over all anchor points, so the number of positives never has to be known on the host.
    """
    boxes = out.boxes()
    obj, cls = out.obj.float(), out.cls.float()
    gt, valid = batch_targets(targets, boxes.shape[0], num_classes, boxes.device)
    if gt.shape[1] == 0:
        loss_obj = F.binary_cross_entropy_with_logits(obj, torch.zeros_like(obj), reduction="sum")
        loss_box = loss_cls = out.reg.sum() * 0.0 + out.cls.sum() * 0.0
        fg_per_gt = torch.zeros((), device=boxes.device)
    else:
        gt_cls = gt[..., 0].long()
        a = simota(boxes.detach(), obj.detach(), cls.detach(), out.centres(), out.strides, gt[..., 1:], gt_cls, valid)
        num_fg = a.fg.sum()
        norm = num_fg.clamp(min=1)
        xyxy = gt[..., 1:].gather(1, a.gt_index[..., None].expand(-1, -1, 4))
        target_boxes = torch.cat([(xyxy[..., :2] + xyxy[..., 2:]) / 2, xyxy[..., 2:] - xyxy[..., :2]], -1)
        fg = a.fg[..., None]
        per_box = box_loss(torch.where(fg, boxes, target_boxes).flatten(0, 1), target_boxes.flatten(0, 1), kind)
        loss_box = torch.where(a.fg, per_box.view_as(a.fg), 0.0).sum() / norm
        assigned = gt_cls.gather(1, a.gt_index)[..., None] == torch.arange(num_classes, device=boxes.device)
        cls_target = assigned.float() * a.iou[..., None]
        per_cls = F.binary_cross_entropy_with_logits(cls, cls_target, reduction="none")
        loss_cls = torch.where(fg, per_cls, 0.0).sum() / norm
        loss_obj = F.binary_cross_entropy_with_logits(obj, a.fg.float(), reduction="sum") / norm
        fg_per_gt = num_fg / valid.sum().clamp(min=1)
    total = BOX_WEIGHT * loss_box + loss_obj + loss_cls
    parts = {
        "box": (BOX_WEIGHT * loss_box).detach(),
        "obj": loss_obj.detach(),
        "cls": loss_cls.detach(),
        "fg_per_gt": fg_per_gt.float(),
    }
    return LossTerms(total, parts)

"""Object detectors behind one registry, for the downstream evaluation (train the same detector on IR, VIS and
each fused set, compare mAP): YOLOX-Nano, -Tiny and -S, on their CSPDarknet or on EfficientNet-Lite0/1/2
(``yolox-s-effnet-lite0`` ..., which start from ImageNet weights with ``Detection(pretrained="imagenet")``).

>>> from taskfuse.tasks import detection
>>> det = detection.create("yolox-s", num_classes=6)
>>> out = det(images)                                   # raw head outputs (DetectionOutput)
>>> terms = det.loss(out, targets)                      # LossTerms; targets: (M, 5) [class, x1, y1, x2, y2]
>>> dets = det.predict(out, score_thresh=0.01, iou_thresh=0.65, max_dets=100)  # (N, 6) [x1, y1, x2, y2, s, c]
"""

from __future__ import annotations

from typing import Any

from torch import nn

from taskfuse.tasks.detection import task  # noqa: F401
from taskfuse.tasks.detection.base import DETECTORS, DetectionOutput
from taskfuse.tasks.detection.task import Detection
from taskfuse.tasks.detection.yolox import VARIANTS, YOLOX


def create(name: str, num_classes: int, in_chans: int = 3, **kw: Any) -> nn.Module:
    """Build the detector registered as ``name``; keyword arguments (e.g. ``box_loss="giou"``) override its
    defaults."""
    return DETECTORS.create(name, num_classes=num_classes, in_chans=in_chans, **kw)


def names() -> list[str]:
    return DETECTORS.names()


__all__ = ["DETECTORS", "VARIANTS", "YOLOX", "Detection", "DetectionOutput", "create", "names"]

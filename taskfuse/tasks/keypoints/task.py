"""Top-down keypoint detection as a task family: a heatmap network of this package run on one object crop at a
time (seed 003 §3.3.2 scores fusion by the aircraft keypoint AP of such a network).

Training crops every object with at least one labelled keypoint around its ground-truth box and regresses
Gaussian heatmaps with the visibility-weighted MSE (``topdown.heatmap_loss``). A prediction runs the network on
the ground-truth boxes, as HRNet's COCO evaluation "with ground-truth boxes" does; an object's score is the mean
of its keypoint maxima. ``flip_test`` averages the heatmaps of each crop and its mirror image.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from taskfuse.data.classes import ClassSet
from taskfuse.data.datasets.coco_keypoints import flip_pairs
from taskfuse.errors import TaskfuseError
from taskfuse.nn.pretrained import check_network_source, load_network_backbone
from taskfuse.tasks.base import TASKS, TaskFamily
from taskfuse.tasks.keypoints.base import KEYPOINT_NETS
from taskfuse.tasks.keypoints.topdown import crop_instances, encode_heatmaps, heatmap_loss, predict_instances


def objects(batch: dict[str, Any], i: int) -> tuple[Tensor, Tensor]:
    """Boxes (N, 4) and keypoints (N, K, 3) of image ``i`` of ``batch``, one row per object."""
    if "boxes" not in batch or "keypoints" not in batch:
        raise TaskfuseError(
            "keypoint detection needs boxes and keypoints and these samples lack them; use a keypoint dataset "
            "(coco_keypoints) or the synthetic scenes"
        )
    boxes, kps = batch["boxes"][i], batch["keypoints"][i]
    if len(boxes) != len(kps):
        raise TaskfuseError(
            f"sample {batch['name'][i]!r} has {len(boxes)} boxes but {len(kps)} keypoint rows; every object needs "
            "one box and one row of keypoints"
        )
    return boxes[:, 1:].float(), kps.float()


@TASKS.register("keypoints")
class Keypoints(TaskFamily):
    """``model``: a name of ``taskfuse.tasks.keypoints``. ``keypoint_names`` fix K and, through their left/right
    names, the pairs swapped by the flip test. ``input_size`` is the (height, width) of the object crops,
    multiples of 4; ``sigma`` the target spread in heatmap pixels. ``pretrained`` loads backbone weights into
    every fresh network: ``"imagenet"`` (EfficientNet-Lite backbones, ``taskfuse[pretrained]``) or a local
    ``.safetensors`` file (``taskfuse.nn.pretrained.load_backbone``)."""

    name = "keypoints"
    target = "keypoints"
    needs = "boxes and keypoints: use a keypoint dataset (coco_keypoints) or the synthetic scenes"

    def __init__(
        self,
        classes: ClassSet,
        keypoint_names: Sequence[str],
        model: str = "simplebaseline-r18",
        input_size: tuple[int, int] = (128, 96),
        sigma: float = 2.0,
        flip_test: bool = True,
        pretrained: str | None = None,
    ) -> None:
        super().__init__(classes, model)
        KEYPOINT_NETS.get(model)
        if not keypoint_names:
            raise TaskfuseError("keypoint_names is empty; give the names of the K keypoints of every object")
        if len(input_size) != 2 or any(int(s) < 4 or int(s) % 4 for s in input_size):
            raise TaskfuseError(f"input_size {tuple(input_size)}: give (height, width), both positive multiples of 4")
        if not sigma > 0:
            raise TaskfuseError(f"sigma {sigma}: give a positive heatmap spread in pixels")
        self.keypoint_names = tuple(str(n) for n in keypoint_names)
        self.num_keypoints = len(self.keypoint_names)
        self.flip_pairs = flip_pairs(list(self.keypoint_names))
        self.input_height, self.input_width = int(input_size[0]), int(input_size[1])
        self.sigma = float(sigma)
        self.flip_test = bool(flip_test)
        self.pretrained = check_network_source(
            pretrained, lambda: KEYPOINT_NETS.create(model, num_keypoints=self.num_keypoints), model
        )

    @property
    def input_size(self) -> tuple[int, int]:
        return self.input_height, self.input_width

    def build(self, in_chans: int) -> nn.Module:
        net = KEYPOINT_NETS.create(self.model, num_keypoints=self.num_keypoints, in_chans=in_chans)
        if self.pretrained is not None:
            load_network_backbone(net, self.pretrained)
        return net

    def loss(self, model: nn.Module, images: Tensor, batch: dict[str, Any]) -> Tensor:
        crops, keypoints, transforms = [], [], []
        for i in range(len(images)):
            boxes, kps = objects(batch, i)
            labelled = kps[..., 2].gt(0).any(dim=1)
            if labelled.any():
                c, t = crop_instances(images[i], boxes[labelled], self.input_size)
                crops.append(c)
                keypoints.append(kps[labelled])
                transforms.append(t)
        if not crops:
            return sum(p.sum() for p in model.parameters()) * 0.0
        pred = model(torch.cat(crops)).float()
        stride = self.input_width / pred.shape[-1]
        target, weights = encode_heatmaps(
            torch.cat(keypoints), torch.cat(transforms), tuple(pred.shape[-2:]), self.sigma, stride
        )
        return heatmap_loss(pred, target, weights)

    @torch.no_grad()
    def predict(self, model: nn.Module, images: Tensor, batch: dict[str, Any]) -> list[dict[str, Tensor]]:
        """Per image ``keypoints`` (N, K, 3) ``[x, y, heatmap maximum]`` and ``scores`` (N,) of its N boxes."""
        out = []
        pairs = self.flip_pairs if self.flip_test else None
        for i in range(len(images)):
            boxes, _ = objects(batch, i)
            kps = predict_instances(model, images[i], boxes, self.input_size, pairs)
            out.append({"keypoints": kps, "scores": kps[..., 2].mean(dim=1)})
        return out

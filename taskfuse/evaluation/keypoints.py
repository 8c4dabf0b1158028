"""Keypoint detection as a downstream task (seed 003 §3.3.2 and Tab. 2: aircraft keypoint AP with HRNet-W32).

``KeypointTask`` trains a top-down heatmap network of ``taskfuse.tasks.keypoints`` on crops around the
ground-truth boxes (every object with at least one labelled keypoint) with the visibility-weighted heatmap MSE,
and tests it on the ground-truth boxes of the test images, as HRNet's COCO evaluation "with ground-truth
boxes" does. An object's score is the mean of its keypoint maxima. Scores are OKS keypoint AP
(``KeypointMetrics``, seed 003's visibility weights 0 / 0.5 / 1) over all objects together: ``AP`` is
AP@[0.50:0.95] (the "mAP[50,95]" of seed 003 Tab. 2), ``AP50``, ``AP75`` and ``AR``, with the AP of each class
that has objects under ``classes``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import cv2
import numpy as np
import torch
from torch import Tensor, nn

from taskfuse.data.classes import ClassSet, spread_palette
from taskfuse.data.datasets.coco_keypoints import flip_pairs
from taskfuse.errors import TaskfuseError
from taskfuse.evaluation.base import DownstreamTask
from taskfuse.metrics.keypoints import KeypointMetrics
from taskfuse.metrics.table import json_number, percent_table
from taskfuse.tasks import keypoints as keypoint_nets
from taskfuse.tasks.keypoints.topdown import crop_instances, encode_heatmaps, heatmap_loss, predict_instances

ALL = "all"
SCORES = ("AP50", "AP75", "AR", "AP")
"""Result keys tabulated after the per-class APs, the headline AP@[0.50:0.95] last."""


def _pairs(batch: dict[str, Any], i: int) -> tuple[Tensor, Tensor]:
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


class KeypointTask(DownstreamTask):
    """Train and score a top-down keypoint network (``model``: a name of ``taskfuse.tasks.keypoints``).

    ``keypoint_names`` fix K and, through their left/right names, the pairs swapped by the flip test
    (``flip_test``: average the heatmaps of each crop and its mirror image, as HRNet tests). ``input_size`` is
    the (height, width) of the object crops, multiples of 4; ``sigma`` the target spread in heatmap pixels.
    """

    name = "keypoints"
    headline = "AP"

    def __init__(
        self,
        classes: ClassSet,
        keypoint_names: Sequence[str],
        model: str = "simplebaseline-r18",
        input_size: tuple[int, int] = (128, 96),
        sigma: float = 2.0,
        flip_test: bool = True,
    ) -> None:
        super().__init__(classes)
        keypoint_nets.KEYPOINT_NETS.get(model)
        if not keypoint_names:
            raise TaskfuseError("keypoint_names is empty; give the names of the K keypoints of every object")
        if len(input_size) != 2 or any(int(s) < 4 or int(s) % 4 for s in input_size):
            raise TaskfuseError(f"input_size {tuple(input_size)}: give (height, width), both positive multiples of 4")
        if not sigma > 0:
            raise TaskfuseError(f"sigma {sigma}: give a positive heatmap spread in pixels")
        self.keypoint_names = tuple(str(n) for n in keypoint_names)
        self.num_keypoints = len(self.keypoint_names)
        self.flip_pairs = flip_pairs(list(self.keypoint_names))
        self.model = model
        self.input_height, self.input_width = int(input_size[0]), int(input_size[1])
        self.sigma = float(sigma)
        self.flip_test = bool(flip_test)

    @property
    def input_size(self) -> tuple[int, int]:
        return self.input_height, self.input_width

    def build(self, in_chans: int) -> nn.Module:
        return keypoint_nets.create(self.model, num_keypoints=self.num_keypoints, in_chans=in_chans)

    def loss(self, model: nn.Module, images: Tensor, batch: dict[str, Any]) -> Tensor:
        crops, keypoints, transforms = [], [], []
        for i in range(len(images)):
            boxes, kps = _pairs(batch, i)
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
            boxes, _ = _pairs(batch, i)
            kps = predict_instances(model, images[i], boxes, self.input_size, pairs)
            out.append({"keypoints": kps, "scores": kps[..., 2].mean(dim=1)})
        return out

    def new_meter(self) -> dict[str, KeypointMetrics]:
        """OKS AP accumulators: ``"all"`` objects, plus one per class name, added as classes appear."""
        return {ALL: KeypointMetrics(self.num_keypoints)}

    def update(self, meter: dict[str, KeypointMetrics], preds: list[dict[str, Tensor]], batch: dict[str, Any]) -> None:
        for i, pred in enumerate(preds):
            boxes, kps = _pairs(batch, i)
            classes = batch["boxes"][i][:, 0].long()
            meter[ALL].update([pred["keypoints"]], [pred["scores"]], [kps], boxes=[boxes])
            for c in classes.unique().tolist():
                name = self.classes.names[c] if 0 <= c < self.classes.num_classes else str(c)
                rows = classes == c
                acc = meter.setdefault(name, KeypointMetrics(self.num_keypoints))
                acc.update([pred["keypoints"][rows]], [pred["scores"][rows]], [kps[rows]], boxes=[boxes[rows]])

    def compute(self, meter: dict[str, KeypointMetrics]) -> dict[str, Any]:
        """``AP`` (AP@[0.50:0.95]), ``AP50``, ``AP75``, ``AR`` (fractions) and ``classes``: AP per class."""
        res = meter[ALL].compute()
        order = [n for n in self.classes.names if n in meter] + sorted(set(meter) - {ALL, *self.classes.names})
        return {
            "AP": json_number(res["map"]),
            "AP50": json_number(res["ap50"]),
            "AP75": json_number(res["ap75"]),
            "AR": json_number(res["mar"]),
            "classes": {n: json_number(meter[n].compute()["map"]) for n in order},
        }

    def table(self, results: Mapping[str, Mapping[str, Any]]) -> str:
        """Percentages with two decimals: the AP of each class (when there are several), AP50, AP75, AR, then
        AP@[0.50:0.95] last, as seed 003 Tab. 2 ends with mAP[50,95]."""
        seen = [n for r in results.values() for n in r.get("classes", {})]
        classes = list(dict.fromkeys(seen)) if len(set(seen)) > 1 else []
        columns = [f"{c} AP" for c in classes] + list(SCORES)
        values = {
            m: {f"{c} AP": r.get("classes", {}).get(c) for c in classes} | {k: r.get(k) for k in SCORES}
            for m, r in results.items()
        }
        return percent_table(values, columns, 2)

    def draw(self, image: Tensor, pred: dict[str, Tensor], sample: dict[str, Any]) -> tuple[Tensor, Tensor]:
        """Keypoints as dots in one colour per keypoint over ``image``, ground-truth boxes as thin white frames:
        every predicted keypoint filled; true keypoints filled when visible, as rings when occluded."""
        boxes = sample["boxes"][:, 1:] if "boxes" in sample else torch.zeros(0, 4)
        shown = pred["keypoints"].clone()
        shown[..., 2] = 2
        truth = sample.get("keypoints", torch.zeros(0, self.num_keypoints, 3))
        return self._dots(image, boxes, shown), self._dots(image, boxes, truth)

    def _dots(self, image: Tensor, boxes: Tensor, keypoints: Tensor) -> Tensor:
        canvas = np.ascontiguousarray((image.detach().cpu().float().clamp(0, 1) * 255).round().byte().permute(1, 2, 0))
        radius = max(2, round(min(canvas.shape[:2]) / 100))
        for x1, y1, x2, y2 in boxes.cpu().tolist():
            corner = (max(int(x1), math.ceil(x2) - 1), max(int(y1), math.ceil(y2) - 1))
            cv2.rectangle(canvas, (int(x1), int(y1)), corner, (255, 255, 255), 1)
        colours = spread_palette(self.num_keypoints)
        for obj in keypoints.cpu().tolist():
            for k, (x, y, v) in enumerate(obj):
                if v > 0:
                    cv2.circle(canvas, (int(x), int(y)), radius, colours[k], -1 if v >= 2 else 1, cv2.LINE_AA)
        return torch.from_numpy(canvas).permute(2, 0, 1).float() / 255.0

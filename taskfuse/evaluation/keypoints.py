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

import argparse
import math
from collections.abc import Mapping
from typing import Any

import cv2
import numpy as np
import torch
from torch import Tensor

from taskfuse.data.classes import spread_palette
from taskfuse.errors import TaskfuseError
from taskfuse.evaluation.base import DOWNSTREAM, DownstreamTask
from taskfuse.metrics.keypoints import KeypointMetrics
from taskfuse.metrics.table import json_number, percent_table
from taskfuse.tasks.keypoints.task import Keypoints, objects

ALL = "all"
SCORES = ("AP50", "AP75", "AR", "AP")
"""Result keys tabulated after the per-class APs, the headline AP@[0.50:0.95] last."""


@DOWNSTREAM.register("keypoints")
class KeypointTask(DownstreamTask, Keypoints):
    """Train and score a top-down keypoint network (``taskfuse.tasks.keypoints.Keypoints``) on one input."""

    headline = "AP"
    summary = "train one keypoint network per input (IR, VIS, fused) and compare OKS AP"
    description = (
        "The seeds' keypoint protocol: as 'evaluate segmentation', with a heatmap keypoint network trained with a "
        "visibility-weighted loss and scored by OKS AP."
    )

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--keypoint-net", default="simplebaseline-r18", help="keypoint network (default: simplebaseline-r18)"
        )
        parser.add_argument(
            "--pretrained",
            metavar="FILE|imagenet",
            help="backbone weights for every fresh network: 'imagenet' (-effnet-lite networks) or a .safetensors",
        )

    @classmethod
    def from_args(cls, args: argparse.Namespace, train: Any) -> KeypointTask:
        names = getattr(train, "keypoint_names", None)
        if not names:
            raise TaskfuseError(
                f"--dataset {args.dataset}: the samples name no keypoints; use a keypoint layout (coco_keypoints)"
            )
        return cls(train.classes, keypoint_names=names, model=args.keypoint_net, pretrained=args.pretrained)

    def new_meter(self) -> dict[str, KeypointMetrics]:
        """OKS AP accumulators: ``"all"`` objects, plus one per class name, added as classes appear."""
        return {ALL: KeypointMetrics(self.num_keypoints)}

    def update(self, meter: dict[str, KeypointMetrics], preds: list[dict[str, Tensor]], batch: dict[str, Any]) -> None:
        for i, pred in enumerate(preds):
            boxes, kps = objects(batch, i)
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

"""Object detection as a downstream task (seed 003 §3.3.4 Tab. 4 and seed 004 Table 4: M3FD box mAP).

``DetectionTask`` trains a detector of ``taskfuse.tasks.detection`` (YOLOX-S by default; seed 003 trains YOLOv5
and seed 004 YOLOv8, one-stage YOLO detectors like it) on the boxes of each input's images and scores its test
predictions with COCO box AP (``DetectionMetrics``): ``mAP50`` (the headline, the "AP50" and "mAP50" columns of
the seeds), ``mAP`` (AP@[0.50:0.95], their "mAP[50,95]" / "mAP50:95"), and the AP50 and AP of every class. The
table follows seed 004's Table 4: per-class AP50, then mAP50 and mAP50:95, in percent.
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

from taskfuse.data.classes import ClassSet
from taskfuse.errors import TaskfuseError
from taskfuse.evaluation.base import DOWNSTREAM, DownstreamTask
from taskfuse.metrics.detection import DetectionMetrics
from taskfuse.metrics.table import json_number, percent_table
from taskfuse.tasks.detection.task import Detection

SCORES = {"mAP50": "mAP50", "mAP": "mAP50:95"}
"""Result keys tabulated after the per-class AP50 columns, with their column titles."""


@DOWNSTREAM.register("detection")
class DetectionTask(DownstreamTask, Detection):
    """Train and score a detector (``taskfuse.tasks.detection.Detection``) on one input; ``draw_thresh`` is the
    lowest score drawn in the qualitative grid."""

    headline = "mAP50"
    summary = "train one detector per input (IR, VIS, fused) and compare mAP@0.5 and mAP@0.5:0.95"
    description = (
        "The seeds' detection protocol: as 'evaluate segmentation', with a detector trained on the boxes of the "
        "dataset and scored by mAP@0.5 and mAP@0.5:0.95 per class."
    )

    def __init__(self, classes: ClassSet, model: str = "yolox-s", draw_thresh: float = 0.3, **options: Any) -> None:
        super().__init__(classes, model, **options)
        if not 0 <= draw_thresh <= 1:
            raise TaskfuseError(f"draw_thresh {draw_thresh}: give a score in [0, 1]")
        self.draw_thresh = float(draw_thresh)

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--detector", default="yolox-s", help="detection network (default: yolox-s)")
        parser.add_argument(
            "--pretrained",
            metavar="FILE|imagenet",
            help="backbone weights for every fresh detector (-effnet-lite detectors): 'imagenet' or a .safetensors",
        )

    @classmethod
    def from_args(cls, args: argparse.Namespace, train: Any) -> DetectionTask:
        return cls(train.classes, model=args.detector, pretrained=args.pretrained)

    def new_meter(self) -> DetectionMetrics:
        return DetectionMetrics(self.classes.num_classes, class_names=self.classes.names, max_dets=self.max_dets)

    def update(self, meter: DetectionMetrics, preds: list[Tensor], batch: dict[str, Any]) -> None:
        self.require_target(batch)
        meter.update(preds, batch["boxes"])

    def compute(self, meter: DetectionMetrics) -> dict[str, Any]:
        """``mAP50``, ``mAP`` (AP@[0.50:0.95]), ``mAP75``, ``mAP_small``/``medium``/``large``, ``mAR`` (AR@100),
        as fractions, and ``AP50`` / ``AP`` per class name (None for classes without ground truth)."""
        res = meter.compute()
        keys = {"mAP50": "map50", "mAP": "map", "mAP75": "map75", "mAR": "mar"}
        keys |= {f"mAP_{a}": f"map_{a}" for a in ("small", "medium", "large")}
        out: dict[str, Any] = {k: json_number(res[v]) for k, v in keys.items()}
        out["AP50"] = {c: json_number(v) for c, v in res["ap50"].items()}
        out["AP"] = {c: json_number(v) for c, v in res["ap"].items()}
        return out

    def table(self, results: Mapping[str, Mapping[str, Any]]) -> str:
        """Percentages with one decimal, as seed 004 Table 4: the AP50 of every class that has a value in some
        row, then mAP50 and mAP50:95."""
        classes = [c for c in self.classes.names if any(r.get("AP50", {}).get(c) is not None for r in results.values())]
        columns = classes + list(SCORES.values())
        values = {
            m: {c: r.get("AP50", {}).get(c) for c in classes} | {t: r.get(k) for k, t in SCORES.items()}
            for m, r in results.items()
        }
        return percent_table(values, columns, 1)

    def draw(self, image: Tensor, pred: Tensor, sample: dict[str, Any]) -> tuple[Tensor, Tensor]:
        """Boxes in their class's palette colour over ``image``: predictions scoring at least ``draw_thresh``
        labelled with class and score, the ground truth with its class."""
        shown = pred[pred[:, 4] >= self.draw_thresh]
        truth = sample.get("boxes", torch.zeros(0, 5))
        drawn = self._boxes(image, shown[:, :4], shown[:, 5], shown[:, 4])
        return drawn, self._boxes(image, truth[:, 1:], truth[:, 0], None)

    def _boxes(self, image: Tensor, boxes: Tensor, classes: Tensor, scores: Tensor | None) -> Tensor:
        canvas = np.ascontiguousarray((image.detach().cpu().float().clamp(0, 1) * 255).round().byte().permute(1, 2, 0))
        scale = max(min(canvas.shape[:2]) / 600, 0.3)
        thick = max(1, round(min(canvas.shape[:2]) / 300))
        labels = scores.cpu().tolist() if scores is not None else [None] * len(boxes)
        for (x1, y1, x2, y2), c, s in zip(boxes.cpu().tolist(), classes.cpu().long().tolist(), labels, strict=True):
            known = 0 <= c < self.classes.num_classes
            colour = self.classes.palette[c] if known else (255, 255, 255)
            corner = (max(int(x1), math.ceil(x2) - 1), max(int(y1), math.ceil(y2) - 1))
            cv2.rectangle(canvas, (int(x1), int(y1)), corner, colour, thick)
            text = self.classes.names[c] if known else str(c)
            if s is not None:
                text += f" {s:.2f}"
            origin = (int(x1), max(int(y1) - 2, 8))
            cv2.putText(canvas, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1, cv2.LINE_AA)
        return torch.from_numpy(canvas).permute(2, 0, 1).float() / 255.0

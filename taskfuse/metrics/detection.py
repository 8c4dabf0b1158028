"""Object-detection mAP@0.5 and mAP@0.5:0.95 in the COCO definition, without pycocotools.

Boxes follow the project convention: predictions per image are (N, 6) ``[x1, y1, x2, y2, score, class]`` and
ground truth (M, 5) ``[class, x1, y1, x2, y2]``, in pixels. Evaluation is COCO's ``bbox`` protocol
(``taskfuse.metrics.coco``): IoU thresholds 0.50:0.05:0.95, 101-point interpolated precision, greedy matching
by score, at most 100 detections per image and class, no crowd regions. A ground-truth box's area (for the
small/medium/large ranges) is its box area, since the project's labels carry no masks.

This is the metric of the object-detection tables of seeds 002 and 003 ("AP50", "mAP[50,95]", M3FD).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from taskfuse.errors import TaskfuseError
from taskfuse.metrics.coco import AREA_RANGES, THRESHOLDS, ImageMatch, match_image, outside, precision_recall

_AT_75 = int(np.flatnonzero(np.isclose(THRESHOLDS, 0.75))[0])


def box_iou(dets: np.ndarray, gts: np.ndarray) -> np.ndarray:
    """(D, G) IoU of xyxy boxes, computed on (x, y, w, h) as COCO's ``maskUtils.iou`` does for boxes."""
    dx, dy, dw, dh = dets[:, 0], dets[:, 1], dets[:, 2] - dets[:, 0], dets[:, 3] - dets[:, 1]
    gx, gy, gw, gh = gts[:, 0], gts[:, 1], gts[:, 2] - gts[:, 0], gts[:, 3] - gts[:, 1]
    iw = np.minimum((dx + dw)[:, None], (gx + gw)[None]) - np.maximum(dx[:, None], gx[None])
    ih = np.minimum((dy + dh)[:, None], (gy + gh)[None]) - np.maximum(dy[:, None], gy[None])
    inter = np.where((iw > 0) & (ih > 0), iw * ih, 0.0)
    union = (dw * dh)[:, None] + (gw * gh)[None] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=inter > 0)


def _as_array(x: Tensor | np.ndarray, cols: int, what: str, index: int) -> np.ndarray:
    arr = x.detach().to("cpu", torch.float64).numpy() if isinstance(x, Tensor) else np.asarray(x, np.float64)
    if arr.size == 0:
        return np.zeros((0, cols))
    if arr.ndim != 2 or arr.shape[1] != cols:
        raise TaskfuseError(f"{what}[{index}] has shape {tuple(arr.shape)}; expected (N, {cols})")
    if not np.isfinite(arr).all():
        raise TaskfuseError(f"{what}[{index}] holds NaN or infinite values; fix the boxes or scores")
    return arr


class DetectionMetrics:
    """Streaming COCO box AP: ``update`` once per batch, ``compute`` at the end.

    ``compute`` returns ``map`` (AP@0.5:0.95), ``map50``, ``map75``, ``map_small``, ``map_medium``,
    ``map_large`` (means over classes that have ground truth; NaN when none has), ``mar`` (recall at
    ``max_dets`` averaged over the thresholds and classes, COCO's AR@100) and per-class ``ap`` and
    ``ap50`` dicts keyed by class name (NaN for a class without ground truth, which COCO leaves out of the
    mean). ``max_dets`` is COCO's ``maxDets`` for the reported numbers.
    """

    def __init__(self, num_classes: int, class_names: Sequence[str] | None = None, max_dets: int = 100) -> None:
        if num_classes < 1:
            raise TaskfuseError(f"num_classes must be at least 1, got {num_classes}")
        if class_names is not None and len(class_names) != num_classes:
            raise TaskfuseError(f"class_names has {len(class_names)} names for num_classes={num_classes}")
        self.num_classes = num_classes
        self.class_names = tuple(class_names or map(str, range(num_classes)))
        self.max_dets = max_dets
        self.reset()

    def reset(self) -> None:
        self._matches: dict[tuple[int, str], list[ImageMatch]] = {
            (c, a): [] for c in range(self.num_classes) for a in AREA_RANGES
        }

    def _classes(self, col: np.ndarray, what: str, index: int) -> np.ndarray:
        cls = col.astype(np.int64)
        if (cls != col).any() or (cls < 0).any() or (cls >= self.num_classes).any():
            bad = sorted(set(col[(cls != col) | (cls < 0) | (cls >= self.num_classes)].tolist()))
            raise TaskfuseError(
                f"{what}[{index}] has class values {bad[:5]} outside 0..{self.num_classes - 1}; "
                "fix the labels or raise num_classes"
            )
        return cls

    def update(self, preds: Sequence[Tensor | np.ndarray], targets: Sequence[Tensor | np.ndarray]) -> None:
        """Add images: ``preds[i]`` (N, 6) ``[x1, y1, x2, y2, score, class]``, ``targets[i]`` (M, 5)
        ``[class, x1, y1, x2, y2]``."""
        if len(preds) != len(targets):
            raise TaskfuseError(f"got predictions for {len(preds)} images but targets for {len(targets)}")
        for i, (p, t) in enumerate(zip(preds, targets, strict=True)):
            det = _as_array(p, 6, "preds", i)
            gt = _as_array(t, 5, "targets", i)
            for what, boxes in (("preds", det[:, :4]), ("targets", gt[:, 1:])):
                if ((boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])).any():
                    raise TaskfuseError(
                        f"{what}[{i}] has a box with x2 < x1 or y2 < y1; boxes are x1, y1, x2, y2 in pixels"
                    )
            det_cls = self._classes(det[:, 5], "preds", i)
            gt_cls = self._classes(gt[:, 0], "targets", i)
            for c in set(det_cls.tolist()) | set(gt_cls.tolist()):
                d, g = det[det_cls == c], gt[gt_cls == c, 1:]
                sim = box_iou(d[:, :4], g)
                d_area = (d[:, 2] - d[:, 0]) * (d[:, 3] - d[:, 1])
                g_area = (g[:, 2] - g[:, 0]) * (g[:, 3] - g[:, 1])
                for name, rng in AREA_RANGES.items():
                    m = match_image(sim, d[:, 4], outside(g_area, rng), outside(d_area, rng), self.max_dets)
                    self._matches[c, name].append(m)

    def compute(self) -> dict:
        """COCO AP numbers as Python floats (see the class docstring for the keys)."""
        pr = {key: precision_recall(matches) for key, matches in self._matches.items()}

        def ap(c: int, area: str, thresholds: slice | int = slice(None)) -> float:
            res = pr[c, area]
            return float(res[0][thresholds].mean()) if res is not None else math.nan

        classes = range(self.num_classes)
        ap_all = [ap(c, "all") for c in classes]
        ap50 = [ap(c, "all", 0) for c in classes]
        return {
            "map": _nanmean(ap_all),
            "map50": _nanmean(ap50),
            "map75": _nanmean([ap(c, "all", _AT_75) for c in classes]),
            "map_small": _nanmean([ap(c, "small") for c in classes]),
            "map_medium": _nanmean([ap(c, "medium") for c in classes]),
            "map_large": _nanmean([ap(c, "large") for c in classes]),
            "mar": _nanmean([float(pr[c, "all"][1].mean()) if pr[c, "all"] else math.nan for c in classes]),
            "ap": dict(zip(self.class_names, ap_all, strict=True)),
            "ap50": dict(zip(self.class_names, ap50, strict=True)),
        }


def _nanmean(values: list[float]) -> float:
    kept = [v for v in values if not math.isnan(v)]
    return float(np.mean(kept)) if kept else math.nan

"""Keypoint AP from object keypoint similarity (OKS), in the COCO keypoint definition with visibility weights.

For a predicted instance and a ground-truth instance of area ``s²`` with K keypoints (COCO, Ronchi & Perona
2017; pycocotools ``computeOks``)::

    e_k = d_k² / (2 s² κ_k²),   κ_k = 2 σ_k
    OKS = Σ_k w(v_k) exp(-e_k) / Σ_k w(v_k)

where ``d_k`` is the pixel distance between predicted and true keypoint k, ``σ_k`` its per-keypoint spread and
``v_k`` the COCO visibility of the true keypoint: 0 not labelled, 1 labelled but occluded, 2 visible.
COCO counts every labelled keypoint once, i.e. ``w = (0, 1, 1)``; the default here, ``w = (0, 0.5, 1)``,
follows seed 003 (FGFusion, §3.3.2, VIRcraft: visible 1, occluded 0.5, invisible 0). Pass
``visibility_weights=(0, 1, 1)`` for numbers identical to pycocotools.

A ground truth whose weights sum to zero is ignored, as COCO ignores instances with ``num_keypoints == 0``:
a detection matched to it is neither true nor false positive. With ``boxes`` given, its OKS follows COCO
(distance to the box grown by its own size on every side); without boxes such instances are left out.

AP over OKS thresholds 0.50:0.05:0.95 is the COCO procedure of ``taskfuse.metrics.coco`` with at most 20
detections per image and the area ranges all / medium / large; ``map`` is the "mAP[50,95]" and ``ap50``,
``ap75`` the "AP50"/"AP75" of seed 003 Tab. 2.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from taskfuse.errors import TaskfuseError
from taskfuse.metrics.coco import AREA_RANGES, THRESHOLDS, ImageMatch, match_image, outside, precision_recall

COCO_PERSON_SIGMAS = (
    0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072,
    0.062, 0.062, 0.107, 0.107, 0.087, 0.087, 0.089, 0.089,
)  # fmt: skip
"""COCO's 17 person-keypoint σ (nose, eyes, ears, shoulders, elbows, wrists, hips, knees, ankles)."""

DEFAULT_SIGMA = sum(COCO_PERSON_SIGMAS) / len(COCO_PERSON_SIGMAS)
"""σ given to every keypoint when none are set: the mean COCO person σ (≈ 0.067), a middle annotation spread
between precise points (eyes, 0.025) and loose ones (hips, 0.107)."""

KEYPOINT_AREA_RANGES = ("all", "medium", "large")
_AT_75 = int(np.flatnonzero(np.isclose(THRESHOLDS, 0.75))[0])


def _array(x: Tensor | np.ndarray, what: str) -> np.ndarray:
    arr = x.detach().to("cpu", torch.float64).numpy() if isinstance(x, Tensor) else np.asarray(x, np.float64)
    if not np.isfinite(arr).all():
        raise TaskfuseError(f"{what} holds NaN or infinite values; fix the coordinates")
    return arr


def _rows(x: Tensor | np.ndarray, what: str, empty: tuple[int, ...]) -> np.ndarray:
    """``x`` as a float64 array; an empty input becomes zeros of shape ``empty`` (no rows)."""
    arr = _array(x, what)
    return np.zeros(empty) if arr.size == 0 else arr


def oks(
    pred: np.ndarray,
    gt: np.ndarray,
    areas: np.ndarray,
    sigmas: np.ndarray,
    visibility_weights: np.ndarray,
    boxes: np.ndarray | None = None,
) -> np.ndarray:
    """(D, G) OKS of predicted keypoints (D, K, ≥2) against ground truth (G, K, 3) ``[x, y, v]``.

    ``areas`` (G,) are the object areas s² in square pixels; ``boxes`` (G, 4) xyxy are used only for ground
    truth whose weights sum to zero (COCO's rule, see the module docstring); those columns are NaN without
    boxes.
    """
    var = (2.0 * sigmas) ** 2
    w = visibility_weights[gt[..., 2].astype(np.int64)]
    scale = var * (areas[:, None] + np.spacing(1)) * 2.0
    dx = pred[:, None, :, 0] - gt[None, :, :, 0]
    dy = pred[:, None, :, 1] - gt[None, :, :, 1]
    wsum = w.sum(axis=1)
    num = (w[None] * np.exp(-(dx**2 + dy**2) / scale[None])).sum(axis=-1)
    out = np.divide(num, wsum[None], out=np.full(num.shape, np.nan), where=wsum[None] > 0)
    empty = wsum == 0
    if boxes is not None and empty.any():
        b = boxes[empty]
        bw, bh = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
        x0, x1 = (b[:, 0] - bw)[None, :, None], (b[:, 0] + 2 * bw)[None, :, None]
        y0, y1 = (b[:, 1] - bh)[None, :, None], (b[:, 1] + 2 * bh)[None, :, None]
        px, py = pred[:, None, :, 0], pred[:, None, :, 1]
        ex = np.maximum(0.0, x0 - px) + np.maximum(0.0, px - x1)
        ey = np.maximum(0.0, y0 - py) + np.maximum(0.0, py - y1)
        out[:, empty] = np.exp(-(ex**2 + ey**2) / scale[empty][None]).mean(axis=-1)
    return out


class KeypointMetrics:
    """Streaming OKS-based keypoint AP for one object class: ``update`` per batch, ``compute`` at the end.

    ``sigmas``: K per-keypoint σ (default ``DEFAULT_SIGMA`` for all); ``visibility_weights``: weights of
    v = 0, 1, 2 in the OKS (default seed 003's 0 / 0.5 / 1). ``compute`` returns ``map`` (AP@0.5:0.95),
    ``ap50``, ``ap75``, ``map_medium``, ``map_large`` and ``mar`` (recall averaged over the thresholds, COCO's
    AR), NaN when no ground truth was seen.
    """

    def __init__(
        self,
        num_keypoints: int,
        sigmas: Sequence[float] | None = None,
        visibility_weights: Sequence[float] = (0.0, 0.5, 1.0),
        max_dets: int = 20,
    ) -> None:
        if num_keypoints < 1:
            raise TaskfuseError(f"num_keypoints must be at least 1, got {num_keypoints}")
        sig = np.full(num_keypoints, DEFAULT_SIGMA) if sigmas is None else np.asarray(sigmas, np.float64)
        if sig.shape != (num_keypoints,) or not (np.isfinite(sig) & (sig > 0)).all():
            raise TaskfuseError(f"sigmas must be {num_keypoints} positive numbers, one per keypoint; got {sigmas}")
        vw = np.asarray(visibility_weights, np.float64)
        if vw.shape != (3,) or (vw < 0).any() or not np.isfinite(vw).all() or vw[1:].sum() == 0:
            raise TaskfuseError(
                "visibility_weights must be 3 non-negative weights for v = 0, 1, 2, not all of v = 1, 2 "
                f"zero; got {visibility_weights}"
            )
        self.num_keypoints = num_keypoints
        self.sigmas = sig
        self.visibility_weights = vw
        self.max_dets = max_dets
        self.reset()

    def reset(self) -> None:
        self._matches: dict[str, list[ImageMatch]] = {a: [] for a in KEYPOINT_AREA_RANGES}

    def update(
        self,
        preds: Sequence[Tensor | np.ndarray],
        scores: Sequence[Tensor | np.ndarray],
        targets: Sequence[Tensor | np.ndarray],
        areas: Sequence[Tensor | np.ndarray] | None = None,
        boxes: Sequence[Tensor | np.ndarray] | None = None,
    ) -> None:
        """Add images: ``preds[i]`` (N, K, 2|3) keypoints (a third column of confidences is not used),
        ``scores[i]`` (N,) instance scores, ``targets[i]`` (M, K, 3) ``[x, y, v]``, and per object either
        ``areas[i]`` (M,) in square pixels or ``boxes[i]`` (M, 4) xyxy (area = box area without ``areas``).
        """
        if areas is None and boxes is None:
            raise TaskfuseError("keypoint targets need object areas or boxes: pass areas=[...] or boxes=[...]")
        n = len(preds)
        for what, seq in (("scores", scores), ("targets", targets), ("areas", areas), ("boxes", boxes)):
            if seq is not None and len(seq) != n:
                raise TaskfuseError(f"got predictions for {n} images but {what} for {len(seq)}")
        k = self.num_keypoints
        for i in range(n):
            pred = _rows(preds[i], f"preds[{i}]", (0, k, 2))
            score = _array(scores[i], f"scores[{i}]").reshape(-1)
            gt = _rows(targets[i], f"targets[{i}]", (0, k, 3))
            if pred.ndim != 3 or pred.shape[1] != k or pred.shape[2] not in (2, 3) or len(score) != len(pred):
                raise TaskfuseError(
                    f"preds[{i}] has shape {pred.shape} with {len(score)} scores; expected (N, {k}, 2|3) "
                    "keypoints and N scores"
                )
            if gt.ndim != 3 or gt.shape[1:] != (k, 3):
                raise TaskfuseError(f"targets[{i}] has shape {gt.shape}; expected (M, {k}, 3) keypoints x, y, v")
            if not np.isin(gt[..., 2], (0, 1, 2)).all():
                raise TaskfuseError(f"targets[{i}] visibility must be 0 (not labelled), 1 (occluded) or 2 (visible)")
            box = _rows(boxes[i], f"boxes[{i}]", (0, 4)) if boxes is not None else None
            if box is not None and (box.shape != (len(gt), 4) or (box[:, 2:] < box[:, :2]).any()):
                raise TaskfuseError(f"boxes[{i}] must be ({len(gt)}, 4) x1, y1, x2, y2 with x2 >= x1 and y2 >= y1")
            if areas is not None:
                area = _array(areas[i], f"areas[{i}]").reshape(-1)
            else:
                area = (box[:, 2] - box[:, 0]) * (box[:, 3] - box[:, 1])
            if len(area) != len(gt) or (area < 0).any():
                raise TaskfuseError(f"areas[{i}] must hold {len(gt)} non-negative object areas in square pixels")
            self._add_image(pred, score, gt, area, box)

    def _add_image(
        self, pred: np.ndarray, score: np.ndarray, gt: np.ndarray, area: np.ndarray, box: np.ndarray | None
    ) -> None:
        unweighted = self.visibility_weights[gt[..., 2].astype(np.int64)].sum(axis=1) == 0
        if box is None:
            gt, area = gt[~unweighted], area[~unweighted]
            unweighted = unweighted[~unweighted]
        if len(pred) == 0 and len(gt) == 0:
            return
        sim = oks(pred, gt, area, self.sigmas, self.visibility_weights, box)
        det_area = np.ptp(pred[..., 0], axis=1) * np.ptp(pred[..., 1], axis=1)
        for name in KEYPOINT_AREA_RANGES:
            rng = AREA_RANGES[name]
            gt_ignore = unweighted | outside(area, rng)
            self._matches[name].append(match_image(sim, score, gt_ignore, outside(det_area, rng), self.max_dets))

    def compute(self) -> dict[str, float]:
        """OKS AP numbers as Python floats (see the class docstring for the keys)."""
        out = {}
        for name in KEYPOINT_AREA_RANGES:
            res = precision_recall(self._matches[name])
            precision = res[0] if res is not None else np.full((len(THRESHOLDS), 1), np.nan)
            if name == "all":
                out["map"] = float(precision.mean())
                out["ap50"] = float(precision[0].mean())
                out["ap75"] = float(precision[_AT_75].mean())
                out["mar"] = float(res[1].mean()) if res is not None else math.nan
            else:
                out[f"map_{name}"] = float(precision.mean())
        return out

"""The COCO average-precision procedure shared by box detection and keypoint (OKS) evaluation.

A re-implementation of ``COCOeval.evaluateImg`` and ``COCOeval.accumulate`` (Lin et al., "Microsoft COCO",
ECCV 2014; the reference is pycocotools), crowd-free, so that the numbers equal the reference ones:

- per image and class, detections are sorted by score (stable) and cut to ``max_dets``; each detection in
  turn takes the free ground truth of highest similarity (IoU or OKS) that is at least the threshold (ties go
  to the later ground truth), preferring ground truth that is not ignored;
- a detection matched to an ignored ground truth, or unmatched and outside the area range, is ignored;
- over all images, detections are sorted by score (stable), precision is made monotone and read at the 101
  recall points 0, 0.01, ..., 1 (the first detection reaching each recall), then averaged.

Similarity thresholds are 0.50:0.05:0.95, built with the same ``np.linspace`` call as COCO so that a
similarity exactly on a threshold matches as it does there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
RECALL_POINTS = np.linspace(0.0, 1.0, int(np.round((1.0 - 0.0) / 0.01)) + 1, endpoint=True)
AREA_RANGES = {
    "all": (0.0, 1e5**2),
    "small": (0.0, 32.0**2),
    "medium": (32.0**2, 96.0**2),
    "large": (96.0**2, 1e5**2),
}
"""COCO's object-area ranges in square pixels (``areaRng``), bounds inclusive on both sides as there."""


@dataclass(frozen=True)
class ImageMatch:
    """One image and class at one area range: kept detections and their fate at every threshold."""

    scores: np.ndarray
    """(D,) scores, highest first."""
    matched: np.ndarray
    """(T, D) bool: the detection took a ground truth at threshold t."""
    ignored: np.ndarray
    """(T, D) bool: the detection counts neither as true nor as false positive at threshold t."""
    num_gt: int
    """Ground truths that are not ignored (the recall denominator)."""


def outside(areas: np.ndarray, area_range: tuple[float, float]) -> np.ndarray:
    """Areas below or above ``area_range`` (COCO's test ``area < lo or area > hi``)."""
    return (areas < area_range[0]) | (areas > area_range[1])


def match_image(
    sim: np.ndarray,
    scores: np.ndarray,
    gt_ignore: np.ndarray,
    det_outside: np.ndarray,
    max_dets: int,
) -> ImageMatch:
    """Greedy COCO matching of one image and class (``COCOeval.evaluateImg``, crowd-free).

    ``sim`` is (D, G) detection x ground-truth similarity in input order, ``scores`` (D,), ``gt_ignore`` (G,)
    bool, ``det_outside`` (D,) bool (detection area outside the range evaluated).
    """
    order = np.argsort(-scores, kind="mergesort")[:max_dets]
    gt_order = np.argsort(gt_ignore.astype(np.int64), kind="mergesort")
    sim = sim[order][:, gt_order]
    gt_ig = gt_ignore[gt_order]
    n_t, n_d, n_g = len(THRESHOLDS), len(order), len(gt_order)
    taken = np.zeros((n_t, n_g), dtype=bool)
    matched = np.zeros((n_t, n_d), dtype=bool)
    ignored = np.zeros((n_t, n_d), dtype=bool)
    rows = np.arange(n_t)
    if n_g:
        for d in range(n_d):
            cand = np.where(~taken & (sim[d][None, :] >= THRESHOLDS[:, None]), sim[d][None, :], -np.inf)
            best = np.full(n_t, -1)
            for group in (~gt_ig, gt_ig):
                vals = np.where(group[None, :], cand, -np.inf)
                last_max = n_g - 1 - np.argmax(vals[:, ::-1], axis=1)
                found = (best < 0) & np.isfinite(vals[rows, last_max])
                best = np.where(found, last_max, best)
            hit = best >= 0
            matched[hit, d] = True
            ignored[hit, d] = gt_ig[best[hit]]
            taken[rows[hit], best[hit]] = True
    ignored |= ~matched & det_outside[order][None, :]
    return ImageMatch(scores[order], matched, ignored, int(np.count_nonzero(~gt_ig)))


def precision_recall(matches: Sequence[ImageMatch]) -> tuple[np.ndarray, np.ndarray] | None:
    """Interpolated precision (T, 101) and final recall (T,) over images (``COCOeval.accumulate``).

    ``None`` when no image holds a ground truth that is not ignored: COCO leaves such a class out of every
    mean (its false positives cost nothing).
    """
    num_gt = sum(m.num_gt for m in matches)
    if num_gt == 0:
        return None
    scores = np.concatenate([m.scores for m in matches])
    order = np.argsort(-scores, kind="mergesort")
    matched = np.concatenate([m.matched for m in matches], axis=1)[:, order]
    ignored = np.concatenate([m.ignored for m in matches], axis=1)[:, order]
    tp = np.cumsum(matched & ~ignored, axis=1).astype(float)
    fp = np.cumsum(~matched & ~ignored, axis=1).astype(float)
    precision = np.zeros((len(THRESHOLDS), len(RECALL_POINTS)))
    recall = np.zeros(len(THRESHOLDS))
    n_d = tp.shape[1]
    if n_d == 0:
        return precision, recall
    for t in range(len(THRESHOLDS)):
        rc = tp[t] / num_gt
        pr = np.maximum.accumulate((tp[t] / (fp[t] + tp[t] + np.spacing(1)))[::-1])[::-1]
        at = np.searchsorted(rc, RECALL_POINTS, side="left")
        reached = at < n_d
        precision[t, reached] = pr[at[reached]]
        recall[t] = rc[-1]
    return precision, recall

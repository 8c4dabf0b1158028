"""Statistics that can tell an effect from noise: mean and sd over seeds, detection AP on any resample of the test
images, the paired bootstrap of a difference between two rows, and the smallest difference a design can detect.

AP is COCO's (``taskfuse.metrics.coco``). ``image_matches`` matches every image and class once; ``scores_on``
then pools the matches of any multiset of images (a bootstrap draw repeats some and leaves others out) into AP50
and AP@[.50:.95] without matching again, so thousands of draws cost seconds. On the identity draw the numbers are
those of ``taskfuse.metrics.detection.DetectionMetrics`` (area range ``all``).

The paired bootstrap compares row B with row A over ``pairs`` of cells, one cell being one trained downstream
network (a fusion seed and a downstream seed): each draw resamples the test images with replacement (n of n, the
same images for every cell of both rows), scores every cell on them, and averages ``B - A`` over the pairs. The
seeds are not resampled: the pairs are all there are. The 95 % interval is the 2.5 and 97.5 percentiles of the
draws.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from taskfuse.metrics.coco import AREA_RANGES, ImageMatch, match_image, outside, precision_recall
from taskfuse.metrics.detection import box_iou

Z_TWO_SIDED_95 = 1.959964
"""Standard normal quantile of a two-sided 5 % test."""
Z_POWER_80 = 0.841621
"""Standard normal quantile of 80 % power."""


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1); the sd of fewer than two values is NaN."""
    arr = np.asarray([v for v in values if v is not None], dtype=np.float64)
    if arr.size == 0:
        return math.nan, math.nan
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else math.nan


def image_matches(
    preds: Sequence[np.ndarray], targets: Sequence[np.ndarray], num_classes: int, max_dets: int = 100
) -> list[list[ImageMatch]]:
    """``[image][class]`` COCO matches of predictions (N, 6) ``[x1, y1, x2, y2, score, class]`` against ground
    truth (M, 5) ``[class, x1, y1, x2, y2]``, area range ``all``."""
    out = []
    everything = AREA_RANGES["all"]
    for pred, gt in zip(preds, targets, strict=True):
        pred, gt = np.asarray(pred, np.float64).reshape(-1, 6), np.asarray(gt, np.float64).reshape(-1, 5)
        row = []
        for c in range(num_classes):
            d, g = pred[pred[:, 5] == c], gt[gt[:, 0] == c, 1:]
            d_area = (d[:, 2] - d[:, 0]) * (d[:, 3] - d[:, 1])
            g_area = (g[:, 2] - g[:, 0]) * (g[:, 3] - g[:, 1])
            sim = box_iou(d[:, :4], g)
            row.append(match_image(sim, d[:, 4], outside(g_area, everything), outside(d_area, everything), max_dets))
        out.append(row)
    return out


@dataclass(frozen=True)
class APScores:
    """AP of one set of images: per class (NaN without ground truth) and their means over classes with some."""

    ap50: np.ndarray
    ap: np.ndarray

    @property
    def map50(self) -> float:
        return _nanmean(self.ap50)

    @property
    def map(self) -> float:
        return _nanmean(self.ap)


def _nanmean(values: np.ndarray) -> float:
    kept = values[~np.isnan(values)]
    return float(kept.mean()) if kept.size else math.nan


def scores_on(matches: Sequence[Sequence[ImageMatch]], images: Sequence[int] | np.ndarray) -> APScores:
    """AP50 and AP@[.50:.95] per class over ``images`` (indices into ``matches``, repeats allowed)."""
    num_classes = len(matches[0]) if len(matches) else 0
    ap50, ap = np.full(num_classes, math.nan), np.full(num_classes, math.nan)
    for c in range(num_classes):
        pr = precision_recall([matches[i][c] for i in images])
        if pr is not None:
            ap50[c], ap[c] = pr[0][0].mean(), pr[0].mean()
    return APScores(ap50, ap)


def bootstrap_draws(n_images: int, draws: int, seed: int = 0) -> np.ndarray:
    """(draws, n_images) indices of the test images, each row a resample with replacement."""
    return np.random.default_rng(seed).integers(0, n_images, size=(draws, n_images))


def draw_scores(matches: Sequence[Sequence[ImageMatch]], draws: np.ndarray) -> np.ndarray:
    """(draws, 2) mAP50 and mAP50:95 of one cell on every bootstrap draw."""
    out = np.empty((len(draws), 2))
    for k, images in enumerate(draws):
        s = scores_on(matches, images)
        out[k] = s.map50, s.map
    return out


@dataclass(frozen=True)
class Difference:
    """Row B minus row A over paired cells, in the score's units: on all test images, and over the draws."""

    pairs: int
    observed: float
    """Mean over the pairs of B - A on the full test set."""
    low: float
    high: float
    """The 95 % percentile interval of the draws."""
    boot_sd: float
    """Standard deviation of the draws (the test set's share of the uncertainty)."""
    pair_sd: float
    """Standard deviation of B - A over the pairs on the full test set (the seeds' share; NaN for one pair)."""


def paired_difference(
    pairs: Sequence[tuple[str, str]], full: Mapping[str, float], drawn: Mapping[str, np.ndarray]
) -> Difference:
    """B - A over ``pairs`` of cell keys ``(a, b)``: ``full`` holds each cell's score on all images, ``drawn``
    its (draws,) scores on the bootstrap draws (the same draws for every cell)."""
    diffs = np.asarray([full[b] - full[a] for a, b in pairs])
    boot = np.mean([drawn[b] - drawn[a] for a, b in pairs], axis=0)
    boot = boot[~np.isnan(boot)]
    low, high = np.percentile(boot, [2.5, 97.5]) if boot.size else (math.nan, math.nan)
    return Difference(
        pairs=len(pairs),
        observed=float(np.nanmean(diffs)),
        low=float(low),
        high=float(high),
        boot_sd=float(boot.std(ddof=1)) if boot.size > 1 else math.nan,
        pair_sd=float(diffs.std(ddof=1)) if len(diffs) > 1 else math.nan,
    )


def detectable(noise: Difference, pairs: int | None = None) -> float:
    """The smallest true difference that a comparison with ``pairs`` pairs (default: the noise's own) detects
    with 80 % power in a two-sided 5 % test, when its null spread is that of ``noise``, the difference of two
    rows that differ only in seed: ``(z_0.975 + z_0.80) sqrt(pair_sd^2 / pairs + boot_sd^2)``. NaN when the
    seeds' spread is unknown (one pair)."""
    n = pairs or noise.pairs
    return (Z_TWO_SIDED_95 + Z_POWER_80) * math.sqrt(noise.pair_sd**2 / n + noise.boot_sd**2)

"""Statistics of the benchmarks: AP recomputed from per-image matches equals the COCO metric on the same images
(also on a resample with repeats), paired differences and their intervals, and the smallest detectable difference."""

from __future__ import annotations

import math

import numpy as np
import pytest

from taskfuse.benchmark.stats import (
    Difference,
    bootstrap_draws,
    detectable,
    draw_scores,
    image_matches,
    mean_sd,
    paired_difference,
    scores_on,
)
from taskfuse.metrics.detection import DetectionMetrics

RNG = np.random.default_rng(0)


def scene(n_gt: int) -> tuple[np.ndarray, np.ndarray]:
    """Ground truth of three classes and predictions near it (jittered, some missed, some false)."""
    xy = RNG.uniform(0, 200, (n_gt, 2))
    wh = RNG.uniform(10, 60, (n_gt, 2))
    gt = np.column_stack([RNG.integers(0, 3, n_gt), xy, xy + wh])
    kept = gt[RNG.uniform(size=n_gt) < 0.8]
    jitter = kept[:, 1:] + RNG.normal(0, 4, (len(kept), 4))
    jitter[:, 2:] = np.maximum(jitter[:, 2:], jitter[:, :2] + 1)
    false = np.column_stack([RNG.uniform(0, 200, (2, 2)), RNG.uniform(210, 260, (2, 2))])
    boxes = np.vstack([jitter, false])
    classes = np.concatenate([kept[:, 0], RNG.integers(0, 3, 2)])
    preds = np.column_stack([boxes, RNG.uniform(0.05, 1, len(boxes)), classes])
    return preds, gt


def coco(preds: list[np.ndarray], gts: list[np.ndarray]) -> dict:
    meter = DetectionMetrics(3)
    meter.update(preds, gts)
    return meter.compute()


def test_ap_from_matches_equals_the_coco_metric_on_any_multiset_of_images() -> None:
    images = [scene(int(n)) for n in RNG.integers(0, 6, 12)]
    preds, gts = [p for p, _ in images], [g for _, g in images]
    matches = image_matches(preds, gts, 3)
    every = scores_on(matches, range(12))
    ref = coco(preds, gts)
    assert every.map50 == pytest.approx(ref["map50"]) and every.map == pytest.approx(ref["map"])
    np.testing.assert_allclose(every.ap50, list(ref["ap50"].values()))
    draw = [3, 3, 0, 7, 11, 11, 11, 5]
    resampled = scores_on(matches, draw)
    ref = coco([preds[i] for i in draw], [gts[i] for i in draw])
    assert resampled.map50 == pytest.approx(ref["map50"]) and resampled.map == pytest.approx(ref["map"])
    scores = draw_scores(matches, np.asarray([draw, list(range(8))]))
    assert scores.shape == (2, 2) and scores[0, 0] == pytest.approx(ref["map50"])


def test_paired_difference_and_detectable_size() -> None:
    full = {"a0": 10.0, "a1": 12.0, "b0": 13.0, "b1": 14.0}
    drawn = {k: v + np.array([-1.0, 0.0, 1.0]) * (2 if k.startswith("b") else 1) for k, v in full.items()}
    d = paired_difference([("a0", "b0"), ("a1", "b1")], full, drawn)
    assert d.observed == pytest.approx(2.5) and d.pairs == 2
    assert d.pair_sd == pytest.approx(np.std([3.0, 2.0], ddof=1))
    assert (d.low, d.high) == pytest.approx((2.5 - 0.95, 2.5 + 0.95))
    noise = Difference(pairs=9, observed=0.1, low=-1.0, high=1.0, boot_sd=0.5, pair_sd=1.5)
    assert detectable(noise) == pytest.approx(2.8016 * math.sqrt(1.5**2 / 9 + 0.25), rel=1e-4)
    assert detectable(noise, pairs=4) > detectable(noise)
    assert math.isnan(detectable(Difference(1, 0.0, 0.0, 0.0, 0.1, math.nan)))


def test_mean_sd_and_draws() -> None:
    assert mean_sd([1.0, 2.0, 3.0]) == (2.0, 1.0)
    assert math.isnan(mean_sd([4.0])[1]) and math.isnan(mean_sd([])[0])
    draws = bootstrap_draws(5, 100, seed=1)
    assert draws.shape == (100, 5) and draws.min() >= 0 and draws.max() <= 4
    assert np.array_equal(draws, bootstrap_draws(5, 100, seed=1))

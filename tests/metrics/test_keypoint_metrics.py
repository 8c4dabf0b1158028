import contextlib
import io
import math

import numpy as np
import pytest
import torch

from taskfuse.errors import TaskfuseError
from taskfuse.metrics.keypoints import COCO_PERSON_SIGMAS, DEFAULT_SIGMA, KeypointMetrics, oks

SIGMA = 0.05
AREA = 40.0 * 40.0


def _displacement(target_oks: float, sigma: float = SIGMA, area: float = AREA) -> float:
    """Distance at which one keypoint's similarity exp(-d² / (2 s² (2σ)²)) equals ``target_oks``."""
    return math.sqrt(-math.log(target_oks) * 2 * area * (2 * sigma) ** 2)


def _gt(k: int, v: int = 2) -> np.ndarray:
    xy = np.stack([np.linspace(10, 50, k), np.linspace(20, 40, k)], axis=1)
    return np.concatenate([xy, np.full((k, 1), float(v))], axis=1)[None]


def test_perfect_prediction_is_one():
    gt = _gt(9)
    m = KeypointMetrics(9)
    m.update([torch.from_numpy(gt)], [torch.tensor([0.9])], [torch.from_numpy(gt)], areas=[torch.tensor([AREA])])
    res = m.compute()
    for key in ("map", "ap50", "ap75", "map_medium"):
        assert res[key] == pytest.approx(1.0)
    assert math.isnan(res["map_large"])


def test_known_displacement_gives_known_oks_and_ap():
    gt = _gt(1)
    pred = gt.copy()
    pred[0, 0, 0] += _displacement(0.72)
    assert oks(pred, gt, np.array([AREA]), np.array([SIGMA]), np.array([0, 0.5, 1.0]))[0, 0] == pytest.approx(0.72)
    m = KeypointMetrics(1, sigmas=[SIGMA])
    m.update([pred], [np.array([0.8])], [gt], areas=[np.array([AREA])])
    res = m.compute()
    assert res["ap50"] == pytest.approx(1.0) and res["ap75"] == 0.0
    assert res["map"] == pytest.approx(0.5)


def test_occluded_keypoints_weigh_half_and_unlabelled_nothing():
    gt = _gt(3)
    gt[0, 1, 2] = 1
    gt[0, 2, 2] = 0
    pred = gt.copy()
    pred[0, 1, 1] += _displacement(0.4)
    pred[0, 2, 0] += 500.0
    sig, area = np.full(3, SIGMA), np.array([AREA])
    seed003 = oks(pred, gt, area, sig, np.array([0.0, 0.5, 1.0]))[0, 0]
    coco = oks(pred, gt, area, sig, np.array([0.0, 1.0, 1.0]))[0, 0]
    assert seed003 == pytest.approx((1.0 + 0.5 * 0.4) / 1.5)
    assert coco == pytest.approx((1.0 + 0.4) / 2)


def test_default_sigma_is_the_mean_coco_sigma():
    assert np.mean(COCO_PERSON_SIGMAS) == pytest.approx(DEFAULT_SIGMA)
    np.testing.assert_allclose(KeypointMetrics(4).sigmas, np.full(4, DEFAULT_SIGMA))


def test_unlabelled_instance_is_ignored_with_boxes_and_dropped_without():
    labelled = _gt(2)
    unlabelled = _gt(2, v=0) + np.array([200.0, 0, 0])
    targets = [np.concatenate([labelled, unlabelled])]
    preds = [np.concatenate([unlabelled[..., :2] + 1, labelled[..., :2]])]
    scores = [np.array([0.9, 0.8])]
    boxes = [np.array([[10.0, 20, 50, 40], [210, 20, 250, 40]])]
    with_boxes = KeypointMetrics(2, sigmas=[SIGMA] * 2)
    with_boxes.update(preds, scores, targets, areas=[np.array([AREA, AREA])], boxes=boxes)
    assert with_boxes.compute()["map"] == pytest.approx(1.0)
    without = KeypointMetrics(2, sigmas=[SIGMA] * 2)
    without.update(preds, scores, targets, areas=[np.array([AREA, AREA])])
    assert without.compute()["map"] == pytest.approx(0.5)


def test_areas_default_to_box_areas():
    gt = _gt(2)
    pred = gt.copy()
    pred[0, 0, 0] += _displacement(0.72)
    by_area, by_box = KeypointMetrics(2, sigmas=[SIGMA] * 2), KeypointMetrics(2, sigmas=[SIGMA] * 2)
    by_area.update([pred], [np.ones(1)], [gt], areas=[np.array([40.0 * 40.0])])
    by_box.update([pred], [np.ones(1)], [gt], boxes=[np.array([[0.0, 0, 40, 40]])])
    a, b = by_area.compute(), by_box.compute()
    assert a["map"] == b["map"] and 0 < a["map"] < 1


def test_bad_inputs_raise():
    m = KeypointMetrics(3)
    gt = _gt(3)
    with pytest.raises(TaskfuseError, match="areas or boxes"):
        m.update([gt], [np.ones(1)], [gt])
    with pytest.raises(TaskfuseError, match="visibility must be"):
        m.update([gt], [np.ones(1)], [_gt(3, v=3)], areas=[np.ones(1)])
    with pytest.raises(TaskfuseError, match="scores"):
        m.update([gt], [np.ones(2)], [gt], areas=[np.ones(1)])
    with pytest.raises(TaskfuseError, match=r"\(M, 3, 3\)"):
        m.update([gt], [np.ones(1)], [_gt(4)], areas=[np.ones(1)])
    with pytest.raises(TaskfuseError, match="sigmas"):
        KeypointMetrics(3, sigmas=[0.1, 0.1])
    with pytest.raises(TaskfuseError, match="visibility_weights"):
        KeypointMetrics(3, visibility_weights=(0, 0, 0))


def _random_case(rng, n_img, k):
    preds, scores, targets, areas, boxes = [], [], [], [], []
    for _ in range(n_img):
        m = int(rng.integers(0, 4))
        centre = rng.uniform(50, 400, (m, 1, 2))
        size = rng.uniform(10, 200, (m, 1, 1))
        xy = centre + rng.uniform(-0.5, 0.5, (m, k, 2)) * size
        v = rng.choice([0, 1, 2], (m, k), p=[0.2, 0.3, 0.5])
        v[rng.random(m) < 0.15] = 0
        gt = np.concatenate([xy, v[..., None].astype(float)], axis=2)
        gt[..., :2][v == 0] = 0
        lo, hi = xy.min(axis=1), xy.max(axis=1)
        box = np.concatenate([lo, hi], axis=1)
        area = np.prod(hi - lo, axis=1) * rng.uniform(0.5, 1.0, m)
        pred = [xy[j] + rng.normal(0, 0.025, (k, 2)) * size[j] for j in range(m) if rng.random() < 0.85]
        for _ in range(int(rng.integers(0, 3))):
            pred.append(rng.uniform(50, 400, (1, 2)) + rng.uniform(-40, 40, (k, 2)))
        preds.append(np.array(pred).reshape(-1, k, 2))
        scores.append(rng.random(len(pred)))
        targets.append(gt.reshape(-1, k, 3))
        areas.append(area)
        boxes.append(box.reshape(-1, 4))
    return preds, scores, targets, areas, boxes


def _pycocotools(preds, scores, targets, areas, boxes, sigmas):
    coco_mod = pytest.importorskip("pycocotools.coco")
    cocoeval = pytest.importorskip("pycocotools.cocoeval")
    anns, dets = [], []
    for i in range(len(preds)):
        for g, a, b in zip(targets[i], areas[i], boxes[i], strict=True):
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": 1, "iscrowd": 0,
                         "keypoints": g.reshape(-1).tolist(), "num_keypoints": int((g[:, 2] > 0).sum()),
                         "area": float(a), "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]]})  # fmt: skip
        for p, s in zip(preds[i], scores[i], strict=True):
            kp = np.concatenate([p, np.ones((len(p), 1))], axis=1)
            dets.append({"image_id": i + 1, "category_id": 1, "keypoints": kp.reshape(-1).tolist(), "score": s})
    with contextlib.redirect_stdout(io.StringIO()):
        gt = coco_mod.COCO()
        gt.dataset = {"images": [{"id": i + 1} for i in range(len(preds))], "annotations": anns,
                      "categories": [{"id": 1}]}  # fmt: skip
        gt.createIndex()
        ev = cocoeval.COCOeval(gt, gt.loadRes(dets), "keypoints")
        ev.params.kpt_oks_sigmas = np.asarray(sigmas)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats


@pytest.mark.parametrize("seed", range(4))
def test_matches_pycocotools_with_coco_weights(seed):
    rng = np.random.default_rng(seed)
    k = 5
    case = _random_case(rng, n_img=10, k=k)
    sigmas = rng.uniform(0.03, 0.1, k)
    stats = _pycocotools(*case, sigmas)
    m = KeypointMetrics(k, sigmas=sigmas, visibility_weights=(0, 1, 1))
    preds, scores, targets, areas, boxes = case
    m.update(preds, scores, targets, areas=areas, boxes=boxes)
    res = m.compute()
    ours = [res[key] for key in ("map", "ap50", "ap75", "map_medium", "map_large", "mar")]
    for a, b in zip(ours, stats[:6], strict=True):
        assert (math.isnan(a) and b == -1) or a == pytest.approx(b, abs=1e-12)

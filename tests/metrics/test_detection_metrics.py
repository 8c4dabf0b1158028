import contextlib
import io
import math

import numpy as np
import pytest
import torch

from taskfuse.errors import TaskfuseError
from taskfuse.metrics.detection import DetectionMetrics, box_iou


def _run(preds, targets, num_classes=1):
    m = DetectionMetrics(num_classes)
    m.update([torch.tensor(p, dtype=torch.float64).reshape(-1, 6) for p in preds],
             [torch.tensor(t, dtype=torch.float64).reshape(-1, 5) for t in targets])  # fmt: skip
    return m.compute()


def test_one_perfect_detection_is_one():
    res = _run([[[10, 10, 50, 60, 0.9, 0]]], [[[0, 10, 10, 50, 60]]])
    one = pytest.approx(1.0, abs=1e-15)
    assert res["map"] == one and res["map50"] == one and res["map75"] == one
    assert res["map_medium"] == one
    assert math.isnan(res["map_small"]) and math.isnan(res["map_large"])
    assert res["ap"] == {"0": one} and res["ap50"] == {"0": one}


def test_missed_object_halves_recall():
    res = _run([[[0, 0, 10, 10, 0.9, 0]]], [[[0, 0, 0, 10, 10], [0, 20, 20, 30, 30]]])
    assert res["map"] == pytest.approx(51 / 101)
    assert res["mar"] == pytest.approx(0.5)


def test_false_positive_ranked_first():
    res = _run([[[50, 50, 60, 60, 0.9, 0], [0, 0, 10, 10, 0.8, 0]]], [[[0, 0, 0, 10, 10]]])
    assert res["map"] == pytest.approx(0.5) and res["map50"] == pytest.approx(0.5)


def test_false_positive_ranked_last_costs_nothing():
    res = _run([[[50, 50, 60, 60, 0.1, 0], [0, 0, 10, 10, 0.8, 0]]], [[[0, 0, 0, 10, 10]]])
    assert res["map"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("y2", "map50", "map_"),
    [(20.0, 1.0, 0.1), (19.9, 1.0, 0.1), (20.1, 0.0, 0.0), (12.0, 1.0, 0.7)],
)
def test_iou_threshold_boundaries(y2, map50, map_):
    res = _run([[[0, 0, 10, y2, 0.9, 0]]], [[[0, 0, 0, 10, 10]]])
    assert res["map50"] == pytest.approx(map50)
    assert res["map"] == pytest.approx(map_)


def test_equal_iou_goes_to_the_later_ground_truth():
    # the first detection overlaps both objects equally (IoU 2/3) and, as in COCOeval, takes the later one,
    # leaving the first object to the second detection (IoU 1 with it, 0.43 with the other)
    res = _run([[[2, 0, 12, 10, 0.9, 0], [0, 0, 10, 10, 0.8, 0]]], [[[0, 0, 0, 10, 10], [0, 4, 0, 14, 10]]])
    assert res["map50"] == pytest.approx(1.0)
    assert res["map"] == pytest.approx((4 * 1.0 + 6 * 0.5 * 51 / 101) / 10)


def test_ground_truth_outside_the_area_range_does_not_steal_a_match():
    # IoU 0.909 with a small object (900 px²), 0.917 with a medium one (1080 px²) that "small" ignores
    res = _run([[[0, 0, 30, 33, 0.9, 0]]], [[[0, 0, 0, 30, 30], [0, 0, 0, 30, 36]]])
    assert res["map_small"] == pytest.approx(0.9)
    assert res["map_medium"] == pytest.approx(0.9)
    assert res["map"] == pytest.approx(0.9 * 51 / 101)


def test_equal_scores_keep_input_order():
    res = _run([[[0, 0, 10, 16, 0.5, 0], [0, 0, 10, 11, 0.5, 0]]], [[[0, 0, 0, 10, 10]]])
    assert res["map"] == pytest.approx((3 * 1.0 + 6 * 0.5) / 10)


def test_class_without_ground_truth_is_nan_and_left_out_of_mean():
    res = _run([[[0, 0, 10, 10, 0.9, 0], [0, 0, 10, 10, 0.95, 1]]], [[[0, 0, 0, 10, 10]]], num_classes=2)
    assert res["ap"]["0"] == pytest.approx(1.0) and math.isnan(res["ap"]["1"])
    assert res["map"] == pytest.approx(1.0)


def test_wrong_class_is_a_miss_and_a_false_positive():
    res = _run([[[0, 0, 10, 10, 0.9, 1]]], [[[0, 0, 0, 10, 10], [1, 50, 50, 60, 60]]], num_classes=2)
    assert res["ap"] == {"0": 0.0, "1": 0.0}


def test_box_iou_by_hand():
    iou = box_iou(np.array([[0.0, 0, 10, 10], [5, 5, 15, 15]]), np.array([[0.0, 0, 10, 10], [20, 20, 30, 30]]))
    np.testing.assert_allclose(iou, [[1.0, 0.0], [25 / 175, 0.0]])


def test_bad_inputs_raise():
    m = DetectionMetrics(2, class_names=("car", "person"))
    with pytest.raises(TaskfuseError, match=r"preds\[0\] has shape"):
        m.update([torch.zeros(1, 5)], [torch.zeros(0, 5)])
    with pytest.raises(TaskfuseError, match="outside 0..1"):
        m.update([torch.zeros(0, 6)], [torch.tensor([[2.0, 0, 0, 1, 1]])])
    with pytest.raises(TaskfuseError, match="x2 < x1"):
        m.update([torch.tensor([[5.0, 0, 1, 1, 0.5, 0]])], [torch.zeros(0, 5)])
    with pytest.raises(TaskfuseError, match="targets for 2"):
        m.update([torch.zeros(0, 6)], [torch.zeros(0, 5)] * 2)
    with pytest.raises(TaskfuseError, match="class_names"):
        DetectionMetrics(3, class_names=("car",))


def _random_case(rng, n_img, n_cls, quantize):
    preds, targets = [], []
    for _ in range(n_img):
        m = int(rng.integers(0, 6))
        xy = rng.uniform(0, 300, (m, 2))
        wh = rng.uniform(4, 140, (m, 2))
        cls = rng.integers(0, n_cls, (m, 1))
        gt = np.hstack([cls, xy, xy + wh])
        dets = []
        for g in gt:
            if rng.random() < 0.8:
                jitter = rng.normal(0, 0.07, 4) * np.r_[g[3] - g[1], g[4] - g[2], g[3] - g[1], g[4] - g[2]]
                box = g[1:] + jitter
                dets.append([*np.minimum(box[:2], box[2:]), *np.maximum(box[:2], box[2:]), rng.random(), g[0]])
        for _ in range(int(rng.integers(0, 4))):
            x, y = rng.uniform(0, 300, 2)
            w, h = rng.uniform(2, 120, 2)
            dets.append([x, y, x + w, y + h, rng.random(), rng.integers(0, n_cls)])
        d = np.array(dets, dtype=np.float64).reshape(-1, 6)
        if quantize:
            d[:, :4] = np.round(d[:, :4])
            d[:, 4] = np.round(d[:, 4], 1)
            gt[:, 1:] = np.round(gt[:, 1:])
        preds.append(d)
        targets.append(gt)
    return preds, targets


def _pycocotools(preds, targets, n_cls):
    coco_mod = pytest.importorskip("pycocotools.coco")
    cocoeval = pytest.importorskip("pycocotools.cocoeval")
    images = [{"id": i + 1} for i in range(len(preds))]
    anns, dets = [], []
    for i, (p, t) in enumerate(zip(preds, targets, strict=True)):
        for g in t:
            w, h = g[3] - g[1], g[4] - g[2]
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": int(g[0]) + 1,
                         "bbox": [g[1], g[2], w, h], "area": w * h, "iscrowd": 0})  # fmt: skip
        for d in p:
            dets.append({"image_id": i + 1, "category_id": int(d[5]) + 1,
                         "bbox": [d[0], d[1], d[2] - d[0], d[3] - d[1]], "score": d[4]})  # fmt: skip
    with contextlib.redirect_stdout(io.StringIO()):
        gt = coco_mod.COCO()
        gt.dataset = {"images": images, "annotations": anns,
                      "categories": [{"id": c + 1} for c in range(n_cls)]}  # fmt: skip
        gt.createIndex()
        ev = cocoeval.COCOeval(gt, gt.loadRes(dets), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    per_class = []
    for k in range(n_cls):
        s = ev.eval["precision"][:, :, k, 0, 2]
        per_class.append(float(s[s > -1].mean()) if (s > -1).any() else math.nan)
    return ev.stats, per_class


@pytest.mark.parametrize("seed", range(6))
def test_matches_pycocotools_on_random_cases(seed):
    rng = np.random.default_rng(seed)
    n_cls = 3
    preds, targets = _random_case(rng, n_img=8, n_cls=n_cls, quantize=seed % 2 == 1)
    if seed == 5:
        extra = np.hstack([rng.uniform(0, 200, (130, 2)), rng.uniform(210, 300, (130, 2)),
                           rng.random((130, 1)), np.zeros((130, 1))])  # fmt: skip
        preds[0] = np.vstack([preds[0], extra])
    stats, per_class = _pycocotools(preds, targets, n_cls)
    m = DetectionMetrics(n_cls)
    m.update([torch.from_numpy(p) for p in preds], [torch.from_numpy(t) for t in targets])
    res = m.compute()
    ours = [res[k] for k in ("map", "map50", "map75", "map_small", "map_medium", "map_large", "mar")]
    for a, b in zip(ours, [*stats[:6], stats[8]], strict=True):
        assert (math.isnan(a) and b == -1) or a == pytest.approx(b, abs=1e-12)
    for a, b in zip(res["ap"].values(), per_class, strict=True):
        assert (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, abs=1e-12)

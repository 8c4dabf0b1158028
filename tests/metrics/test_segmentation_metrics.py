import math

import numpy as np
import pytest
import torch

from taskfuse.data.classes import MFNET
from taskfuse.errors import TaskfuseError
from taskfuse.metrics.segmentation import (
    MFNET_7_CLASSES,
    SegmentationMetrics,
    confusion_matrix,
    iou_from_confusion,
    iou_table,
)


def test_confusion_matrix_and_iou_by_hand():
    target = torch.tensor([[[0, 0, 1, 1], [2, 2, 255, 1]]])
    pred = torch.tensor([[[0, 1, 1, 1], [2, 0, 0, 1]]])
    cm = confusion_matrix(pred, target, num_classes=3)
    assert cm.tolist() == [[1, 1, 0], [0, 3, 0], [1, 0, 1]]
    iou = iou_from_confusion(cm)
    assert iou.tolist() == pytest.approx([1 / 3, 3 / 4, 1 / 2])


def test_compute_by_hand_with_absent_class_nan_and_excluded():
    m = SegmentationMetrics(4, class_names=("a", "b", "c", "d"))
    m.update(torch.tensor([[[0, 1, 1, 1], [2, 0, 0, 1]]]), torch.tensor([[[0, 0, 1, 1], [2, 2, 255, 1]]]))
    res = m.compute()
    assert math.isnan(res["iou"]["d"]) and math.isnan(res["acc"]["d"])
    assert res["miou"] == pytest.approx((1 / 3 + 3 / 4 + 1 / 2) / 3)
    assert res["pixel_acc"] == pytest.approx(5 / 7)
    assert res["acc"]["a"] == pytest.approx(1 / 2) and res["acc"]["c"] == pytest.approx(1 / 2)
    assert res["mean_acc"] == pytest.approx((1 / 2 + 1 + 1 / 2) / 3)
    assert res["classes"] == ["a", "b", "c", "d"]


def test_predicted_but_absent_class_counts_as_zero():
    m = SegmentationMetrics(2)
    m.update(torch.tensor([[[1, 1]]]), torch.tensor([[[0, 0]]]))
    res = m.compute()
    assert res["iou"] == {"0": 0.0, "1": 0.0}
    assert res["miou"] == 0.0
    assert math.isnan(res["acc"]["1"]) and res["mean_acc"] == 0.0


def test_logits_equal_labels_and_streaming_equals_one_batch():
    logits = torch.randn(4, 5, 6, 7)
    target = torch.randint(0, 5, (4, 6, 7))
    target[0, :2] = 255
    a, b = SegmentationMetrics(5), SegmentationMetrics(5)
    a.update(logits, target)
    b.update(logits[:2].argmax(1), target[:2])
    b.update(logits[2:].argmax(1), target[2:])
    assert torch.equal(a.cm, b.cm)
    assert a.cm.sum() == target.ne(255).sum()


def test_against_numpy_reference():
    rng = np.random.default_rng(3)
    for _ in range(5):
        c = int(rng.integers(2, 7))
        t = rng.integers(0, c, (2, 9, 11))
        p = np.where(rng.random(t.shape) < 0.6, t, rng.integers(0, c, t.shape))
        t[rng.random(t.shape) < 0.1] = 255
        m = SegmentationMetrics(c)
        m.update(torch.from_numpy(p), torch.from_numpy(t))
        res = m.compute()
        keep = t != 255
        for k in range(c):
            inter = np.sum((p == k) & (t == k) & keep)
            union = np.sum(((p == k) | (t == k)) & keep)
            expected = inter / union if union else math.nan
            got = res["iou"][str(k)]
            assert (math.isnan(got) and math.isnan(expected)) or got == pytest.approx(expected)
        assert res["pixel_acc"] == pytest.approx(np.mean(p[keep] == t[keep]))


def test_mfnet_seven_class_subset_leaves_out_background_and_guardrail():
    names = MFNET.names
    target = torch.arange(9).repeat_interleave(4).reshape(1, 4, 9)
    pred = target.clone()
    pred[target == names.index("unlabelled")] = names.index("car")
    pred[target == names.index("guardrail")] = names.index("bump")
    m = SegmentationMetrics(9, class_names=names)
    m.update(pred, target)
    seven = m.compute(classes=MFNET_7_CLASSES)
    assert seven["classes"] == list(MFNET_7_CLASSES)
    assert seven["miou"] == pytest.approx((4 / 8 + 4 / 8 + 5 * 1.0) / 7)
    full = m.compute()
    assert full["miou"] == pytest.approx((0 + 4 / 8 + 4 / 8 + 5 * 1.0 + 0) / 9)
    assert m.compute(classes=[1, 2, 3, 4, 5, 7, 8])["miou"] == seven["miou"]


def test_bad_inputs_raise():
    m = SegmentationMetrics(3)
    with pytest.raises(TaskfuseError, match="outside 0..2"):
        m.update(torch.zeros(1, 2, 2, dtype=torch.long), torch.full((1, 2, 2), 7))
    with pytest.raises(TaskfuseError, match="channels"):
        m.update(torch.zeros(1, 4, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long))
    with pytest.raises(TaskfuseError, match="integer labels"):
        m.update(torch.zeros(1, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long))
    with pytest.raises(TaskfuseError, match="matching"):
        m.update(torch.zeros(1, 2, 2, dtype=torch.long), torch.zeros(1, 3, 2, dtype=torch.long))
    with pytest.raises(TaskfuseError, match="guardrail"):
        SegmentationMetrics(9, class_names=MFNET.names).compute(classes=["guard_rail"])


SEED000_TABLE1 = {
    "SegMiF": ([87.80, 71.40, 63.20, 47.60, 31.10, 48.90, 50.30], 57.19),
    "PSFusion": ([88.62, 75.00, 65.53, 47.34, 42.59, 52.96, 58.68], 61.53),
    "MRFS": ([89.40, 75.40, 65.00, 49.00, 37.20, 53.10, 58.80], 61.13),
    "Seafusion": ([92.95, 82.69, 81.25, 88.52, 43.87, 54.90, 72.32], 73.79),
    "Ours": ([93.36, 84.16, 81.54, 90.29, 46.49, 55.69, 73.13], 74.95),
}


def _result(ious: list[float], miou: float) -> dict:
    return {
        "iou": dict(zip(MFNET_7_CLASSES, [v / 100 for v in ious], strict=True)),
        "miou": miou / 100,
        "classes": MFNET_7_CLASSES,
    }


def test_iou_table_layout_and_marks_on_seed000_table1():
    results = {m: _result(*row) for m, row in SEED000_TABLE1.items()}
    for ious, miou in SEED000_TABLE1.values():
        assert np.mean(ious) == pytest.approx(miou, abs=0.006)
    md, data = iou_table(results)
    lines = md.strip().splitlines()
    assert lines[0] == "| Method | " + " | ".join(MFNET_7_CLASSES) + " | mIoU |"
    assert lines[-1].startswith("| Ours | **93.36** |") and lines[-1].endswith("| **74.95** |")
    assert "| Seafusion | _92.95_ |" in md
    assert data["columns"][-1] == "mIoU"
    assert data["best"]["car_stop"] == ["Ours"] and data["second"]["car_stop"] == ["Seafusion"]
    assert data["second"]["person"] == ["Seafusion"]
    assert data["rows"]["MRFS"]["bike"] == pytest.approx(65.00)


def test_iou_table_ties_nan_and_mismatch():
    a = {"iou": {"x": 0.5, "y": float("nan")}, "miou": 0.5, "classes": ["x", "y"]}
    b = {"iou": {"x": 0.5, "y": 0.2}, "miou": 0.35, "classes": ["x", "y"]}
    c = {"iou": {"x": 0.1, "y": 0.1}, "miou": 0.1, "classes": ["x", "y"]}
    md, data = iou_table({"a": a, "b": b, "c": c})
    assert data["best"]["x"] == ["a", "b"] and data["second"]["x"] == ["c"]
    assert data["best"]["y"] == ["b"] and data["second"]["y"] == ["c"]
    assert data["rows"]["a"]["y"] is None and "| a | **50.00** | nan |" in md
    single_md, single = iou_table({"a": a})
    assert "**" not in single_md and single["best"]["x"] == []
    with pytest.raises(TaskfuseError, match="same classes"):
        iou_table({"a": a, "d": {**b, "classes": ["x"]}})

"""The detection downstream task: YOLOX loss on the batch's boxes, predictions per image, COCO AP per class,
the table in seed 004's layout, drawings, and one run of the protocol on synthetic scenes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from taskfuse.data.classes import MSRS, ClassSet
from taskfuse.errors import TaskfuseError
from taskfuse.evaluation.detection import DetectionTask
from taskfuse.evaluation.inputs import InputSpec
from taskfuse.evaluation.loop import ProtocolConfig, evaluate

ROAD = ClassSet(("car", "person", "bike"), ((255, 0, 0), (0, 255, 0), (0, 0, 255)))


def batch() -> dict:
    """Two images: two cars and a person, and none."""
    boxes = torch.tensor([[0.0, 4, 4, 20, 16], [0.0, 30, 8, 46, 30], [1.0, 10, 30, 18, 46]])
    return {"boxes": [boxes, torch.zeros(0, 5)], "name": ["a", "b"]}


def test_options_are_checked() -> None:
    assert DetectionTask(ROAD).model == "yolox-s"
    with pytest.raises(TaskfuseError, match="unknown detector"):
        DetectionTask(ROAD, model="yolox-q")
    with pytest.raises(TaskfuseError, match="iou_thresh"):
        DetectionTask(ROAD, iou_thresh=0.0)
    with pytest.raises(TaskfuseError, match="max_dets"):
        DetectionTask(ROAD, max_dets=0)


def test_loss_trains_on_the_boxes_and_refuses_samples_without_any() -> None:
    task = DetectionTask(ROAD, model="yolox-nano")
    net = task.build(3)
    assert net.num_classes == 3
    images = torch.randn(2, 3, 48, 56)
    loss = task.loss(net, images, batch())
    loss.backward()
    assert torch.isfinite(loss) and loss > 0 and net.head.cls_preds[0].bias.grad is not None
    with pytest.raises(TaskfuseError, match="needs boxes"):
        task.loss(net, images, {"name": ["x", "y"]})


def test_predictions_per_image_and_perfect_scores_per_class() -> None:
    task = DetectionTask(ROAD, model="yolox-nano", score_thresh=0.0, max_dets=5)
    net = task.build(3).eval()
    preds = task.predict(net, torch.randn(2, 3, 48, 56), batch())
    assert len(preds) == 2 and all(p.shape == (5, 6) for p in preds)
    meter = task.new_meter()
    truth = batch()["boxes"]
    perfect = [torch.cat([t[:, 1:], torch.full((len(t), 1), 0.9), t[:, :1]], 1) for t in truth]
    task.update(meter, perfect, batch())
    result = task.compute(meter)
    assert result["mAP50"] == pytest.approx(1.0) and result["mAP"] == pytest.approx(1.0)
    assert result["mAR"] == pytest.approx(1.0)
    assert result["AP50"] == {"car": pytest.approx(1.0), "person": pytest.approx(1.0), "bike": None}
    assert result["AP"]["bike"] is None
    json.dumps(result, allow_nan=False)
    worse = task.new_meter()
    shifted = [p.clone() for p in perfect]
    shifted[0][0] += torch.tensor([6.0, 0, 6, 0, -0.4, 0])
    task.update(worse, shifted, batch())
    low = task.compute(worse)
    # One of two cars found, at the top score: precision 1 up to recall 0.5, i.e. 51 of COCO's 101 points.
    assert low["AP50"]["car"] == pytest.approx(51 / 101) and low["AP50"]["person"] == pytest.approx(1.0)


def test_table_follows_seed_004_with_class_ap50_then_map50_and_map() -> None:
    task = DetectionTask(ROAD)
    results = {
        "ir": {"mAP50": 0.5, "mAP": 0.3, "AP50": {"car": 0.6, "person": 0.4, "bike": None}},
        "vi": {"mAP50": 0.7, "mAP": 0.2, "AP50": {"car": 0.8, "person": 0.6, "bike": None}},
        "fused": {"mAP50": 0.75, "mAP": None, "AP50": {"car": 0.9, "person": 0.6, "bike": None}},
    }
    lines = task.table(results).splitlines()
    assert lines[0] == "| Method | car | person | mAP50 | mAP50:95 |"
    assert lines[2] == "| ir | 60.0 | _40.0_ | 50.0 | **30.0** |"
    assert lines[3] == "| vi | _80.0_ | **60.0** | _70.0_ | _20.0_ |"
    assert lines[4] == "| fused | **90.0** | **60.0** | **75.0** | - |"


def test_draw_frames_boxes_in_their_class_colour() -> None:
    task = DetectionTask(ROAD, draw_thresh=0.5)
    image = torch.zeros(3, 48, 56)
    sample = {"boxes": batch()["boxes"][0]}
    pred = torch.tensor([[30.0, 8, 46, 30, 0.9, 0], [10.0, 30, 18, 46, 0.2, 1]])
    drawn, truth = task.draw(image, pred, sample)
    assert drawn.shape == truth.shape == (3, 48, 56) and drawn.min() >= 0 and drawn.max() <= 1
    assert torch.equal(drawn[:, 20, 30], torch.tensor([1.0, 0, 0])), "a car's left edge in red"
    assert drawn[:, 38, 10].sum() == 0, "a person below draw_thresh is not drawn"
    assert torch.equal(truth[:, 38, 10], torch.tensor([0.0, 1, 0])), "the true person's left edge in green"
    empty, _ = task.draw(image, torch.zeros(0, 6), sample)
    assert empty.sum() == 0


def test_protocol_runs_on_synthetic_scenes(scenes, tmp_path: Path) -> None:
    train, test = scenes
    task = DetectionTask(MSRS, model="yolox-nano")
    cfg = ProtocolConfig(epochs=1, batch_size=4, lr=1e-3, crop=32, device="cpu", grid=1)
    results = evaluate(task, train, test, [InputSpec("ir", "ir"), InputSpec("vi", "vi")], tmp_path, cfg, progress=False)
    assert list(results) == ["ir", "vi"]
    for r in results.values():
        assert r["mAP50"] is None or 0 <= r["mAP50"] <= 1
        assert {c for c, v in r["AP50"].items() if v is not None} <= {"car", "person", "bike", "color_cone"}
    table = (tmp_path / "table.md").read_text().splitlines()
    assert table[0].startswith("| Method |") and table[0].endswith("| mAP50 | mAP50:95 |") and len(table) == 4
    assert (tmp_path / "grid.png").is_file()

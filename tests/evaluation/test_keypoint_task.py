"""The keypoint downstream task: top-down loss on ground-truth boxes, predictions per image, OKS AP scores per
class, the table in seed 003's layout, drawings, and one run of the protocol on synthetic scenes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from taskfuse.data.classes import MSRS, ClassSet
from taskfuse.data.synthetic import KEYPOINT_NAMES
from taskfuse.errors import TaskfuseError
from taskfuse.evaluation.inputs import InputSpec
from taskfuse.evaluation.keypoints import KeypointTask
from taskfuse.evaluation.loop import ProtocolConfig, evaluate
from taskfuse.tasks.keypoints.simplebaseline import SimpleBaseline

PLANES = ClassSet(("aircraft", "glider"), ((255, 0, 0), (0, 0, 255)))
NAMES = ("head", "left_wing", "right_wing")
SIZE = (32, 24)


def objects() -> dict:
    """One image's batch: two aircraft and a glider, keypoints inside their boxes, the last one unlabelled."""
    boxes = torch.tensor([[0.0, 4, 4, 20, 24], [0.0, 30, 8, 46, 30], [1.0, 10, 30, 26, 44]])
    kps = torch.tensor(
        [
            [[12.5, 6.5, 2], [6.5, 15.5, 1], [18.5, 15.5, 2]],
            [[38.5, 10.5, 2], [32.5, 20.5, 2], [44.5, 20.5, 0]],
            [[0.0, 0.0, 0], [0.0, 0.0, 0], [0.0, 0.0, 0]],
        ]
    )
    return {"boxes": [boxes], "keypoints": [kps], "name": ["a"]}


def test_options_are_checked_and_flip_pairs_come_from_the_names() -> None:
    task = KeypointTask(PLANES, NAMES, input_size=SIZE)
    assert task.flip_pairs == [(1, 2)] and task.num_keypoints == 3 and task.input_size == SIZE
    with pytest.raises(TaskfuseError, match="unknown keypoint network"):
        KeypointTask(PLANES, NAMES, model="hrnet-w99")
    with pytest.raises(TaskfuseError, match="multiples of 4"):
        KeypointTask(PLANES, NAMES, input_size=(30, 24))
    with pytest.raises(TaskfuseError, match="keypoint_names"):
        KeypointTask(PLANES, ())


def test_loss_trains_on_labelled_objects_and_refuses_unpaired_rows() -> None:
    task = KeypointTask(PLANES, NAMES, input_size=SIZE)
    torch.manual_seed(0)
    net = task.build(3)
    images = torch.randn(1, 3, 48, 56)
    loss = task.loss(net, images, objects())
    loss.backward()
    assert loss > 0 and net.head.weight.grad.abs().sum() > 0
    empty = {"boxes": [torch.zeros(0, 5)], "keypoints": [torch.zeros(0, 3, 3)], "name": ["e"]}
    net.zero_grad()
    zero = task.loss(net, images, empty)
    zero.backward()
    assert zero == 0 and net.head.weight.grad is not None
    bad = objects()
    bad["keypoints"] = [bad["keypoints"][0][:2]]
    with pytest.raises(TaskfuseError, match="3 boxes but 2 keypoint rows"):
        task.loss(net, images, bad)
    with pytest.raises(TaskfuseError, match="lack them"):
        task.loss(net, images, {"name": ["x"]})


def test_predictions_per_image_and_perfect_scores_per_class() -> None:
    task = KeypointTask(PLANES, NAMES, input_size=SIZE)
    net = SimpleBaseline(3, deconv_channels=16).eval()
    batch = objects()
    preds = task.predict(net, torch.randn(1, 3, 48, 56), batch)
    assert len(preds) == 1 and preds[0]["keypoints"].shape == (3, 3, 3) and preds[0]["scores"].shape == (3,)
    assert torch.allclose(preds[0]["scores"], preds[0]["keypoints"][..., 2].mean(1))
    meter = task.new_meter()
    truth = batch["keypoints"][0]
    task.update(meter, [{"keypoints": truth.clone(), "scores": torch.tensor([0.9, 0.8, 0.7])}], batch)
    result = task.compute(meter)
    assert result == {"AP": 1.0, "AP50": 1.0, "AP75": 1.0, "AR": 1.0, "classes": {"aircraft": 1.0, "glider": None}}
    json.dumps(result)
    worse = task.new_meter()
    off = truth.clone()
    off[0, :, :2] += 3.0
    task.update(worse, [{"keypoints": off, "scores": torch.tensor([0.9, 0.8, 0.7])}], batch)
    assert task.compute(worse)["AP"] < 1.0


def test_table_follows_seed_003_with_classes_first_and_ap_last() -> None:
    task = KeypointTask(PLANES, NAMES)
    results = {
        "ir": {"AP": 0.5, "AP50": 0.9, "AP75": 0.4, "AR": 0.6, "classes": {"aircraft": 0.5, "glider": None}},
        "vi": {"AP": 0.25, "AP50": 0.8, "AP75": 0.5, "AR": 0.3, "classes": {"aircraft": 0.25, "glider": 0.1}},
        "fused": {"AP": 0.6, "AP50": 0.8, "AP75": 0.2, "AR": None, "classes": {"aircraft": 0.6, "glider": 0.2}},
    }
    lines = task.table(results).splitlines()
    assert lines[0] == "| Method | aircraft AP | glider AP | AP50 | AP75 | AR | AP |"
    assert lines[2] == "| ir | _50.00_ | - | **90.00** | _40.00_ | **60.00** | _50.00_ |"
    assert lines[3] == "| vi | 25.00 | _10.00_ | _80.00_ | **50.00** | _30.00_ | 25.00 |"
    assert lines[4] == "| fused | **60.00** | **20.00** | _80.00_ | 20.00 | - | **60.00** |"
    single = {m: {**r, "classes": {"aircraft": r["AP"]}} for m, r in results.items()}
    assert task.table(single).splitlines()[0] == "| Method | AP50 | AP75 | AR | AP |"


def test_draw_puts_a_dot_of_each_keypoint_colour_at_its_place() -> None:
    task = KeypointTask(PLANES, NAMES)
    batch = objects()
    image = torch.zeros(3, 48, 56)
    sample = {"boxes": batch["boxes"][0], "keypoints": batch["keypoints"][0]}
    pred = {"keypoints": batch["keypoints"][0].clone(), "scores": torch.ones(3)}
    drawn, truth = task.draw(image, pred, sample)
    assert drawn.shape == truth.shape == (3, 48, 56) and drawn.min() >= 0 and drawn.max() <= 1
    head = drawn[:, 6, 12]
    assert head.max() > 0.5 and not torch.equal(head, drawn[:, 15, 18])
    assert truth[:, 15, 6].sum() == 0, "an occluded keypoint is a ring, empty in the middle"
    assert drawn[:, 15, 6].sum() > 0, "every predicted keypoint is a filled dot"
    assert torch.equal(truth[:, 4, 4], torch.ones(3)), "ground-truth boxes are framed in white"


def test_protocol_runs_on_synthetic_scenes(scenes, tmp_path: Path) -> None:
    train, test = scenes
    task = KeypointTask(MSRS, KEYPOINT_NAMES, input_size=SIZE)
    cfg = ProtocolConfig(epochs=1, batch_size=4, lr=1e-3, crop=32, device="cpu", grid=1)
    inputs = [InputSpec("ir", "ir"), InputSpec("vi", "vi")]
    results = evaluate(task, train, test, inputs, tmp_path, cfg, progress=False)
    assert list(results) == ["ir", "vi"]
    for r in results.values():
        assert 0 <= r["AP"] <= 1 and set(r["classes"]) <= {"car", "person", "bike", "color_cone"}
    table = (tmp_path / "table.md").read_text().splitlines()
    assert table[0].endswith("| AP50 | AP75 | AR | AP |") and len(table) == 4
    assert (tmp_path / "grid.png").is_file()

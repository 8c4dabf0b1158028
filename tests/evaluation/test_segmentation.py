from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from taskfuse import models
from taskfuse.data.classes import ClassSet
from taskfuse.errors import TaskfuseError
from taskfuse.evaluation.segmentation import SegmentationTask, colorize, direct_segmentation
from taskfuse.models.weights import save_weights
from taskfuse.tasks.segmentation.task import cross_entropy

THREE = ClassSet(("bg", "car", "person"), ((0, 0, 0), (255, 0, 0), (0, 0, 255)))


def test_cross_entropy_ignores_255_and_survives_empty_crops() -> None:
    logits = torch.randn(2, 3, 4, 5, requires_grad=True)
    label = torch.randint(0, 3, (2, 4, 5))
    label[0, 0] = 255
    assert torch.allclose(cross_entropy(logits, label), F.cross_entropy(logits, label, ignore_index=255))
    empty = cross_entropy(logits, torch.full_like(label, 255))
    empty.backward()
    assert empty.item() == 0.0 and logits.grad is not None


def test_scores_table_and_drawing() -> None:
    task = SegmentationTask(THREE, model="segformer-b0")
    target = torch.tensor([[[0, 1, 1, 2]]])
    good, poor = task.new_meter(), task.new_meter()
    task.update(good, [target[0]], {"label": target})
    task.update(poor, [torch.tensor([[0, 1, 0, 0]])], {"label": target})
    results = {"good": task.compute(good), "poor": task.compute(poor)}
    assert results["good"]["mIoU"] == 1.0 and results["poor"]["iou"] == {"bg": 1 / 3, "car": 0.5, "person": 0.0}
    lines = task.table(results).splitlines()
    assert lines[0] == "| Method | bg | car | person | mIoU |"
    assert lines[2] == "| good | **100.00** | **100.00** | **100.00** | **100.00** |"
    assert lines[3] == "| poor | _33.33_ | _50.00_ | _0.00_ | _27.78_ |"

    image = torch.full((3, 1, 4), 0.5)
    drawn, truth = task.draw(image, torch.tensor([[0, 1, 2, 1]]), {"label": torch.tensor([[1, 255, 0, 2]])})
    assert torch.equal(drawn[:, 0, 1], torch.tensor([1.0, 0.0, 0.0])) and torch.equal(truth[:, 0, 1], image[:, 0, 1])
    blue = colorize(torch.tensor([[2]]), image[:, :1, :1], THREE.palette)
    assert torch.equal(blue[:, 0, 0], torch.tensor([0, 0, 1.0]))


def test_bad_options_are_refused(tmp_path: Path) -> None:
    with pytest.raises(TaskfuseError, match="unknown segmenter"):
        SegmentationTask(THREE, model="segformer-b9")
    with pytest.raises(TaskfuseError, match="no such file"):
        SegmentationTask(THREE, pretrained=str(tmp_path / "none.safetensors"))
    with pytest.raises(TaskfuseError, match="these samples have none"):
        SegmentationTask(THREE, model="segformer-b0").loss(torch.nn.Identity(), torch.zeros(1, 3, 4, 4), {})


def test_direct_needs_a_segmentation_head(scenes, tmp_path: Path) -> None:
    weights = save_weights(models.create("seafusion", widths=(4, 4, 4)), tmp_path / "sea.safetensors", "seafusion",
                           {"widths": [4, 4, 4]})  # fmt: skip
    task = SegmentationTask(THREE, model="segformer-b0")
    with pytest.raises(TaskfuseError, match=r"seafusion has no segmentation head \(its outputs: none\)"):
        direct_segmentation(weights, scenes[1], task, tmp_path / "direct", device="cpu", progress=False)

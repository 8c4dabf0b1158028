"""Tiny synthetic splits and a one-convolution segmentation task, so the protocol's tests run in seconds."""

from __future__ import annotations

from typing import Any

import pytest
from torch import Tensor, nn
from torch.utils.data import Dataset

from taskfuse.data.classes import MSRS
from taskfuse.data.synthetic import SyntheticScenes
from taskfuse.evaluation.segmentation import SegmentationTask
from taskfuse.tasks.segmentation import SegmentationOutput


class TinyNet(nn.Module):
    """Dropout then one 3 x 3 convolution: enough to train, and random in training mode."""

    def __init__(self, in_chans: int, num_classes: int) -> None:
        super().__init__()
        self.drop = nn.Dropout(0.2)
        self.conv = nn.Conv2d(in_chans, num_classes, 3, padding=1)

    def forward(self, x: Tensor) -> SegmentationOutput:
        return SegmentationOutput(self.conv(self.drop(x)))


class TinyTask(SegmentationTask):
    def build(self, in_chans: int) -> nn.Module:
        return TinyNet(in_chans, self.classes.num_classes)


class Rendered(Dataset):
    """Samples rendered once, served from memory."""

    def __init__(self, scenes: SyntheticScenes) -> None:
        self.samples = [scenes[i] for i in range(len(scenes))]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.samples[i]


@pytest.fixture(scope="session")
def scenes() -> tuple[Rendered, Rendered]:
    """(train, test): 8 and 3 scenes of 48 x 64 pixels with labels, boxes and keypoints."""
    return Rendered(SyntheticScenes(8, 1, 48, 64)), Rendered(SyntheticScenes(3, 2, 48, 64))


@pytest.fixture
def tiny_task() -> TinyTask:
    return TinyTask(MSRS, model="segformer-b0", aux_weight=0.0)

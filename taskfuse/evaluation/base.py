"""The contract of one downstream task of the evaluation protocol.

The seeds (000 SeAFusion §4.4, 001 PSFusion §4.3, 002 MAFS §4.4, 003 FGFusion, 004 DSIFuse) judge a fusion
method by what a task network learns from its images: the same network is trained from the same seed on each
input (IR only, VIS only, every fused set), scored on the test split, and the scores are tabulated. A
``DownstreamTask`` says how one task does each step; ``taskfuse.evaluation.loop`` does the rest (normalisation,
training, resume, prediction, files) the same way for every task.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from taskfuse.data.classes import ClassSet


class DownstreamTask(ABC):
    """One downstream task of the protocol: how to build, train, run, score, tabulate and draw its network.

    ``images`` given to ``loss`` and ``predict`` are (B, 3, H, W), already normalised with the input's own
    per-channel mean and std (gray inputs repeated to 3 channels, so one architecture serves every row).
    ``batch`` is the dict of ``taskfuse.train.data.collate``: ``label`` (B, H, W) int64 when the samples have
    one (255 = ignore), ``boxes`` / ``keypoints`` as lists of per-image tensors, ``name`` a list.
    """

    name: ClassVar[str]
    """``"segmentation"``, ``"detection"`` or ``"keypoints"``."""
    headline: ClassVar[str]
    """The key of ``compute`` shown first and used for ranking: ``"mIoU"``, ``"mAP50"``, ``"AP"``."""

    def __init__(self, classes: ClassSet, **options: Any) -> None:
        self.classes = classes

    @abstractmethod
    def build(self, in_chans: int) -> nn.Module:
        """A freshly initialised network; the caller seeds torch first, so the same seed gives the same init."""

    @abstractmethod
    def loss(self, model: nn.Module, images: Tensor, batch: dict[str, Any]) -> Tensor:
        """Scalar training loss of ``model`` on one batch."""

    @abstractmethod
    @torch.no_grad()
    def predict(self, model: nn.Module, images: Tensor, batch: dict[str, Any]) -> list[Any]:
        """One prediction per image, in the form ``update`` and ``draw`` take (the model is in eval mode)."""

    @abstractmethod
    def new_meter(self) -> Any:
        """An empty accumulator of test scores, e.g. ``SegmentationMetrics(num_classes)``."""

    @abstractmethod
    def update(self, meter: Any, preds: list[Any], batch: dict[str, Any]) -> None:
        """Add one batch of predictions and its ground truth (from ``batch``) to ``meter``."""

    @abstractmethod
    def compute(self, meter: Any) -> dict[str, Any]:
        """JSON-able scores (NaN written as None), containing ``self.headline``."""

    @abstractmethod
    def table(self, results: Mapping[str, Mapping[str, Any]]) -> str:
        """Markdown table of ``compute`` results keyed by input name, one row per input, in the seeds' layout
        (classes as columns, the headline last), best and second best of every column marked with
        ``taskfuse.metrics.table.rank_marks`` and ``mark``."""

    @abstractmethod
    def draw(self, image: Tensor, pred: Any, sample: dict[str, Any]) -> tuple[Tensor, Tensor]:
        """(prediction, ground truth) visualisations, each (3, H, W) float in [0, 1], drawn over or with
        ``image`` (3, H, W) in [0, 1]; ``sample`` is the un-normalised test sample the prediction is of."""

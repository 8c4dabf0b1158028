"""The contract of one downstream task of the evaluation protocol.

The seeds (000 SeAFusion §4.4, 001 PSFusion §4.3, 002 MAFS §4.4, 003 FGFusion, 004 DSIFuse) judge a fusion
method by what a task network learns from its images: the same network is trained from the same seed on each
input (IR only, VIS only, every fused set), scored on the test split, and the scores are tabulated. A
``DownstreamTask`` adds to a task family (``taskfuse.tasks``: network, loss, predictions) how its predictions
are scored, tabulated and drawn, and the command-line options of its ``taskfuse evaluate`` sub-command;
``taskfuse.evaluation.loop`` does the rest (normalisation, training, resume, prediction, files) the same way
for every task. ``DOWNSTREAM`` holds the tasks, and ``taskfuse evaluate`` builds one sub-command per entry.
"""

from __future__ import annotations

import argparse
from abc import abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from torch import Tensor

from taskfuse.registry import Registry
from taskfuse.tasks.base import TaskFamily


class DownstreamTask(TaskFamily):
    """A task family as the protocol runs it: how to score, tabulate and draw its predictions.

    ``images`` given to ``loss`` and ``predict`` are (B, 3, H, W), already normalised with the input's own
    per-channel mean and std (gray inputs repeated to 3 channels, so one architecture serves every row).
    ``batch`` is the dict of ``taskfuse.data.batching.collate``.
    """

    headline: ClassVar[str]
    """The key of ``compute`` shown first and used for ranking: ``"mIoU"``, ``"mAP50"``, ``"AP"``."""
    summary: ClassVar[str]
    """One line for ``taskfuse evaluate --help``."""
    description: ClassVar[str]
    """The sub-command's description."""

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """The sub-command's own options (the protocol's shared options are added by the command line)."""

    @classmethod
    @abstractmethod
    def from_args(cls, args: argparse.Namespace, train: Any) -> DownstreamTask:
        """The task for the parsed options and the opened training split (its ``classes`` and annotations)."""

    def extra_rows(self, test: Any, out: Path, device: str, grid: int) -> dict[str, tuple[dict[str, Any], Path]]:
        """Rows scored outside the protocol, by name: (result, its folder under ``out``); e.g. a fusion
        network's own segmentation head. None by default."""
        return {}

    @abstractmethod
    def new_meter(self) -> Any:
        """An empty accumulator of test scores, e.g. ``SegmentationMetrics(num_classes)``."""

    @abstractmethod
    def update(self, meter: Any, preds: list[Any], batch: dict[str, Any]) -> None:
        """Add one batch of predictions and its ground truth (from ``batch``) to ``meter``."""

    @abstractmethod
    def compute(self, meter: Any) -> dict[str, Any]:
        """JSON-able scores (NaN written as None), containing ``self.headline``."""

    def rescore(self, result: Mapping[str, Any]) -> dict[str, Any]:
        """A stored ``compute`` result scored with this task's current scoring options (a rerun reads results
        back instead of testing again); unchanged by default."""
        return dict(result)

    @abstractmethod
    def table(self, results: Mapping[str, Mapping[str, Any]]) -> str:
        """Markdown table of ``compute`` results keyed by input name, one row per input, in the seeds' layout
        (classes as columns, the headline last), best and second best of every column marked with
        ``taskfuse.metrics.table.rank_marks`` and ``mark``."""

    @abstractmethod
    def draw(self, image: Tensor, pred: Any, sample: dict[str, Any]) -> tuple[Tensor, Tensor]:
        """(prediction, ground truth) visualisations, each (3, H, W) float in [0, 1], drawn over or with
        ``image`` (3, H, W) in [0, 1]; ``sample`` is the un-normalised test sample the prediction is of."""


DOWNSTREAM: Registry[type[DownstreamTask]] = Registry("downstream task")
"""The protocol's tasks by name; each module of this package registers its own."""

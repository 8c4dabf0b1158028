"""What a task family is: how its network is built, what it learns from, its loss and its predictions.

A family (segmentation, detection, keypoints) is the one place that knows how a task network consumes a batch
(``taskfuse.data.batching.collate``): which key holds its ground truth (``target``), how the loss is computed
from images and that batch, and what one prediction per image looks like. Training with a task in the loop
(``taskfuse.train``) and the downstream protocol (``taskfuse.evaluation``) both build on it.

``images`` given to ``loss`` and ``predict`` are (B, C, H, W) float tensors as the network takes them (the
downstream protocol normalises each input with its own mean and std; in-loop training feeds the fused image).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from taskfuse.data.classes import ClassSet
from taskfuse.errors import TaskfuseError
from taskfuse.registry import Registry


class TaskFamily(ABC):
    """One task: a network registry name, the dataset's classes, and how to train and run that network."""

    name: ClassVar[str]
    """``"segmentation"``, ``"detection"`` or ``"keypoints"``."""
    target: ClassVar[str]
    """The batch key holding the ground truth this task learns from (``label``, ``boxes``, ``keypoints``)."""
    needs: ClassVar[str]
    """What a dataset must provide, for error messages (e.g. "label masks (msrs, mfnet, fmb, pst900)")."""

    def __init__(self, classes: ClassSet, model: str) -> None:
        self.classes = classes
        self.model = model

    def require_target(self, batch: dict[str, Any]) -> None:
        """Raise a clear error when ``batch`` lacks this task's ground truth."""
        if self.target not in batch:
            raise TaskfuseError(f"{self.name} needs {self.needs}, and these samples have none")

    @abstractmethod
    def build(self, in_chans: int) -> nn.Module:
        """A freshly initialised network; the caller seeds torch first, so the same seed gives the same init."""

    @abstractmethod
    def loss(self, model: nn.Module, images: Tensor, batch: dict[str, Any]) -> Tensor:
        """Scalar training loss of ``model`` on one batch."""

    @abstractmethod
    @torch.no_grad()
    def predict(self, model: nn.Module, images: Tensor, batch: dict[str, Any]) -> list[Any]:
        """One prediction per image (the model is in eval mode)."""


TASKS: Registry[type[TaskFamily]] = Registry("task")
"""Task families by name; each family's package registers its own."""

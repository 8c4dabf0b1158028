"""Task families behind one registry, each whole under its folder: network registry, loss, output type.

* ``segmentation``: segmenters (SegFormer, SegNeXt, DeepLabV3+, BiSeNet), pixel cross-entropy, class maps;
* ``detection``: YOLOX detectors, the YOLOX loss, boxes;
* ``keypoints``: top-down heatmap networks, the visibility-weighted heatmap loss, keypoints per box.

Training with a task in the loop and the downstream evaluation protocol both ask a family
(``taskfuse.tasks.base.TaskFamily``) how to build its network, compute its loss and predict.

>>> from taskfuse import tasks
>>> tasks.names()
['detection', 'keypoints', 'segmentation']
"""

from __future__ import annotations

from typing import Any

from taskfuse.data.classes import ClassSet
from taskfuse.tasks import detection, keypoints, segmentation  # noqa: F401  (each family registers itself)
from taskfuse.tasks.base import TASKS, TaskFamily


def create(name: str, classes: ClassSet, **options: Any) -> TaskFamily:
    """The task family registered as ``name`` for ``classes``; keyword arguments are the family's options
    (``model``, and e.g. ``aux_weight`` for segmentation)."""
    return TASKS.create(name, classes, **options)


def names() -> list[str]:
    return TASKS.names()


__all__ = ["TASKS", "TaskFamily", "create", "names"]

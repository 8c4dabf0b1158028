"""Top-down keypoint networks behind one registry: heatmap regressors run on one object crop at a time.

Seed 003 (FGFusion, §3.3.2) scores fusion by the aircraft keypoint AP of a heatmap network (HRNet-W32) trained on
each input; the downstream evaluation trains one of these networks per input the same way.

>>> from taskfuse.tasks import keypoints
>>> net = keypoints.create("simplebaseline-r18", num_keypoints=9)
>>> heatmaps = net(crops)                 # (N, 9, h / 4, w / 4) for crops (N, 3, h, w)
>>> keypoints.names()
"""

from __future__ import annotations

from typing import Any

from torch import nn

from taskfuse.tasks.keypoints import simplebaseline  # noqa: F401
from taskfuse.tasks.keypoints.base import KEYPOINT_NETS
from taskfuse.tasks.keypoints.task import Keypoints


def create(name: str, num_keypoints: int, in_chans: int = 3, **kw: Any) -> nn.Module:
    """Build the keypoint network registered as ``name``; keyword arguments override its defaults."""
    return KEYPOINT_NETS.create(name, num_keypoints=num_keypoints, in_chans=in_chans, **kw)


def names() -> list[str]:
    return KEYPOINT_NETS.names()


__all__ = ["KEYPOINT_NETS", "Keypoints", "create", "names"]

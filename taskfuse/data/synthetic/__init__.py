"""Procedural, labelled, registered infrared/visible road scenes (MSRS classes), day and night.

Scenes are built so that neither modality suffices alone: by day colour, texture and road paint live in
the visible image while the infrared one is smooth and low-resolution; at night people and cars are
bright heat sources in the infrared but dark, noisy or drowned in headlight glare in the visible image,
and road paint (no heat contrast) is visible only where lit. See ``docs/synthetic.md``.

>>> from taskfuse.data.synthetic import render_scene
>>> scene = render_scene(7, 128, 160)
>>> scene["ir"].shape, scene["vi"].shape, scene["label"].shape
(torch.Size([1, 128, 160]), torch.Size([3, 128, 160]), torch.Size([128, 160]))
"""

from taskfuse.data.synthetic.config import SceneConfig
from taskfuse.data.synthetic.dataset import (
    KEYPOINT_NAMES,
    OBJECT_CLASSES,
    SEED_STRIDE,
    SyntheticScenes,
    render_scene,
    write_scenes,
)

__all__ = [
    "KEYPOINT_NAMES",
    "OBJECT_CLASSES",
    "SEED_STRIDE",
    "SceneConfig",
    "SyntheticScenes",
    "render_scene",
    "write_scenes",
]

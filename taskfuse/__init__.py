"""taskfuse: application-guided infrared-visible image fusion.

>>> import taskfuse
>>> model = taskfuse.load()                      # the built-in default fusion model
>>> rgb = model.fuse_color(ir, vi)               # ir (B,1,H,W), vi (B,3,H,W) in [0, 1]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from taskfuse.version import __version__ as __version__

if TYPE_CHECKING:
    from taskfuse.models.base import FusionModel


def load(method: str | None = None, weights: str | None = None, device: str = "cpu", **cfg: Any) -> FusionModel:
    """A fusion model for inference (eval mode, every call under ``torch.inference_mode``): the built-in
    default, a named method, or trained weights (.safetensors). See ``taskfuse.inference.load``."""
    from taskfuse.inference import load as _load

    return _load(method, weights, device, **cfg)

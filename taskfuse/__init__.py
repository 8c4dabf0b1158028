"""taskfuse: application-guided infrared-visible image fusion.

>>> import taskfuse
>>> from taskfuse.data.synthetic import render_scene
>>> scene = render_scene(seed=0, height=64, width=80)
>>> ir, vi = scene["ir"][None], scene["vi"][None]    # (B,1,H,W) and (B,3,H,W) in [0, 1]
>>> model = taskfuse.load()                           # the built-in default fusion model
>>> model.fuse_color(ir, vi).shape
torch.Size([1, 3, 64, 80])

The subpackages (``taskfuse.models``, ``taskfuse.data``, ``taskfuse.metrics``, ...) are attributes of the package
that load on first use, so ``import taskfuse`` stays light (it does not import torch).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from taskfuse import benchmark, cli, data, evaluation, losses, metrics, models, nn, tasks, train
    from taskfuse.models.base import FusionModel

__all__ = [
    "__version__",
    "benchmark",
    "cli",
    "data",
    "evaluation",
    "load",
    "losses",
    "metrics",
    "models",
    "nn",
    "tasks",
    "train",
]

SUBPACKAGES = tuple(n for n in __all__ if n not in ("__version__", "load"))


def load(method: str | None = None, weights: str | None = None, device: str = "cpu", **cfg: Any) -> FusionModel:
    """A fusion model for inference (eval mode, every call under ``torch.inference_mode``): the built-in
    default, a named method, or trained weights (.safetensors). See ``taskfuse.inference.load``."""
    from taskfuse.inference import load as _load

    return _load(method, weights, device, **cfg)


def __getattr__(name: str) -> Any:
    """``taskfuse.models`` and the other subpackages, and ``__version__``, imported when first used."""
    if name in SUBPACKAGES:
        return importlib.import_module(f"taskfuse.{name}")
    if name == "__version__":
        return importlib.import_module("taskfuse.version").__version__
    raise AttributeError(f"module 'taskfuse' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *SUBPACKAGES})

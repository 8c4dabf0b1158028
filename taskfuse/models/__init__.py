"""Fusion methods, learned and classical, behind one registry.

>>> import taskfuse
>>> model = taskfuse.models.create("gff")          # classical guided-filter fusion
>>> taskfuse.models.names()                         # every registered method
"""

from __future__ import annotations

from typing import Any

from taskfuse.models.base import FusionModel, FusionOutput
from taskfuse.registry import Registry

MODELS: Registry = Registry("fusion method")


def create(name: str, **cfg: Any) -> FusionModel:
    """Build the fusion method registered as ``name``; keyword arguments override its defaults."""
    return MODELS.create(name, **cfg)


def names() -> list[str]:
    return MODELS.names()


from taskfuse.models import classical, dsifuse, fgfusion, lite, mafs, psfusion, seafusion  # noqa: E402,F401  (registration)

__all__ = ["MODELS", "FusionModel", "FusionOutput", "create", "names"]

"""Fusion methods, learned and classical, behind one registry of ``MethodSpec`` (``taskfuse.models.spec``).

One folder per learned method holds its network, its objective and its spec (``taskfuse/models/psfusion/``);
the classical rules live in ``classical.py``.

>>> from taskfuse import models
>>> model = models.create("gff")                    # a network by name; keyword arguments override defaults
>>> models.get("psfusion").strategy                 # everything else about a method: its spec
'single_stage'
>>> "lite" in models.names()
True
"""

from __future__ import annotations

from typing import Any

from taskfuse.models import classical, dsifuse, fgfusion, lite, mafs, psfusion, seafusion, tardal  # noqa: F401
from taskfuse.models.base import FusionModel, FusionOutput
from taskfuse.models.spec import METHODS, MethodSpec, register

DEFAULT_METHOD = "lite"
"""The built-in default: the ``lite`` network with the weights shipped in the package
(``taskfuse/models/lite/MODEL_CARD.md``)."""


def get(name: str) -> MethodSpec:
    """The spec of the method registered as ``name`` (unknown names raise with the closest known ones)."""
    return METHODS.get(name)


def create(name: str, **cfg: Any) -> FusionModel:
    """Build the network of the method registered as ``name``; keyword arguments override its defaults."""
    return get(name).network(**cfg)


def names(learned: bool | None = None) -> list[str]:
    """Registered method names; ``learned`` True / False keeps only trained networks / parameter-free rules."""
    return [n for n in METHODS.names() if learned is None or METHODS.get(n).learned == learned]


__all__ = [
    "DEFAULT_METHOD",
    "METHODS",
    "FusionModel",
    "FusionOutput",
    "MethodSpec",
    "create",
    "get",
    "names",
    "register",
]

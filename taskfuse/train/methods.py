"""What the training engine needs to know about each learned fusion method beyond its network: its objective
and the strategy that trains it by default.

A config's ``method`` names the network (``taskfuse.models``) and the entry here; ``loss:`` holds the keyword
arguments of the loss class, ``strategy:`` may pick another strategy. The loss class is imported when first
used, so a method whose loss module is missing fails only when it is trained. A project of your own registers
its method with ``register_method`` in a module listed under the config's ``imports:``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from taskfuse.errors import TaskfuseError
from taskfuse.registry import Registry


@dataclass(frozen=True)
class MethodSpec:
    """``loss`` is ``"package.module:ClassName"``; ``strategy`` a name in ``taskfuse.train.strategies``."""

    loss: str
    strategy: str

    def loss_class(self) -> Any:
        module, _, attr = self.loss.partition(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as e:
            raise TaskfuseError(f"the loss {self.loss} cannot be imported ({e}); is the method fully installed?") from e


METHODS: Registry = Registry("trainable method")


def register_method(name: str, loss: str, strategy: str) -> MethodSpec:
    """Make the fusion method ``name`` (already in ``taskfuse.models``) trainable by ``taskfuse train``."""
    spec = MethodSpec(loss, strategy)
    METHODS.register(name)(spec)
    return spec


def method_spec(name: str) -> MethodSpec:
    return METHODS.get(name)


register_method("seafusion", "taskfuse.losses.seafusion:SeAFusionLoss", "iterative_joint")
register_method("psfusion", "taskfuse.losses.psfusion:PSFusionLoss", "single_stage")
register_method("mafs", "taskfuse.losses.mafs:MAFSLoss", "mafs_two_stage")
register_method("fgfusion", "taskfuse.losses.fgfusion:FGFusionLoss", "single_stage")
register_method("dsifuse", "taskfuse.losses.dsifuse:DSIFuseLoss", "single_stage")
register_method("lite", "taskfuse.losses.lite:LiteLoss", "fusion_only")

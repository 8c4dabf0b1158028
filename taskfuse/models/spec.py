"""What the project knows about a fusion method, in one object: ``MethodSpec``, and the registry of them.

Every method declares its spec beside its network (``taskfuse/models/<method>/__init__.py``, or
``classical.py`` for the rules without weights) and registers it with ``register``; everything else in the
project (the trainer, the benchmarks, the command line, the tests) reads the spec and never branches on a
method's name. A method of your own registers its spec the same way from a module of its own, which a training
config lists under ``imports:`` and the command line takes with its global option ``--import MODULE``
(docs/extending.md).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor

from taskfuse.models.base import FusionModel
from taskfuse.registry import Registry


@dataclass(frozen=True)
class Converter:
    """Reads one kind of released checkpoint of a method (``taskfuse convert NAME SRC --out FILE``)."""

    name: str
    """Command-line name, e.g. ``seafusion-official``."""
    read: Callable[[Path], tuple[dict[str, Tensor], dict[str, Any], dict[str, Any]]]
    """The file -> (state dict of the method's network, its ``model:`` config, provenance); raises
    ``TaskfuseError`` naming the file and what was expected when it is another kind of file."""
    summary: str
    """One line: the file it reads and where that comes from."""


@dataclass(frozen=True)
class MethodSpec:
    """One fusion method: its network and everything needed to train, test and benchmark it."""

    name: str
    """Registry name (lower case), as in ``method:`` of a config and ``--method``."""
    network: Callable[..., FusionModel]
    """The network class; the ``model:`` keys of a config are its keyword arguments."""
    loss: Callable[..., Any] | None = None
    """The training objective's class, called as ``loss(out, batch) -> LossTerms``; the ``loss:`` keys of a config
    are its keyword arguments. None for rules that are not trained."""
    fusion_loss: Callable[..., Any] | None = None
    """The objective on pairs without labels (``fusion_only``), built from the same ``loss:`` keys; None means
    ``loss`` itself, which then must accept batches without ``label``."""
    pretext_loss: Callable[[], Any] | None = None
    """A label-free pretext objective for the network's ``forward_pretext`` (MAFS stage I); None = no pretext."""
    seg_head: str = ""
    """Key of ``FusionOutput.aux`` holding the network's own class logits, when it has a segmentation head."""
    tasks: tuple[str, ...] = ("segmentation",)
    """Task families (``taskfuse.tasks``) whose annotations can guide the method's training (``train.task``):
    ``segmentation`` (label masks), ``detection`` (boxes), ``keypoints``; the first is its paper's."""
    strategy: str = "fusion_only"
    """The training strategy of the method's paper (``taskfuse.train.strategies``)."""
    task_head: tuple[str, ...] = ()
    """Top-level modules of the network that only the task's loss terms train and the fused image does not pass
    through (FGFusion's foreground head, eq. 7). A training without the task leaves them untrained; the claim
    benchmark warms them up alone before a task-guided continuation (``train.train_only``)."""
    config: str = ""
    """The shipped config (``taskfuse/configs/<config>.yaml``) holding the paper's recipe; empty = none."""
    small: Mapping[str, Any] = field(default_factory=dict)
    """A narrowed network (keyword arguments of ``network``) for tests and the CPU-sized benchmark."""
    benchmark: Mapping[str, Any] = field(default_factory=dict)
    """Network overrides of the full-scale synthetic benchmark, where the paper's network does not fit it."""
    weights: Path | None = None
    """Weights shipped inside the package, loaded by ``taskfuse.load(name)`` when no file is given."""
    source: str = ""
    """The paper (and seed number) the method comes from."""
    converters: tuple[Converter, ...] = ()
    """Readers of the authors' released checkpoints (``taskfuse convert``); empty = none released or supported."""

    @property
    def learned(self) -> bool:
        """Has trainable parameters (needs weights to fuse)."""
        return self.loss is not None

    @property
    def summary(self) -> str:
        """First line of the network's docstring, for listings."""
        return (self.network.__doc__ or "").strip().splitlines()[0] if self.network.__doc__ else ""

    def objective(self, labelled: bool = True, **kwargs: Any) -> Any:
        """The objective built from ``loss:`` keys: the labelled one, or the one for pairs without labels."""
        if self.loss is None:
            raise TypeError(f"{self.name} is not trained; it has no objective")
        return (self.loss if labelled or self.fusion_loss is None else self.fusion_loss)(**kwargs)


METHODS: Registry[MethodSpec] = Registry("fusion method")


def register(spec: MethodSpec) -> MethodSpec:
    """Add ``spec`` to the registry (names are case-insensitive and unique)."""
    METHODS.register(spec.name)(spec)
    return spec

"""What every training strategy provides to the loop, and what the loop provides to it.

The loop (``taskfuse.train.loop``) owns data, steps, logging, validation, EMA and checkpoints; a strategy owns
the networks, their optimisers and what one step does. ``phases`` names the strategy's phases, each with the
dataset it reads and its ``PhaseConfig`` (optimiser, schedule, length, batch size, crop); the loop gives every
phase its own batch stream. Step ``t`` (0-based) of ``total_steps()`` calls ``train_step(t)``, which pulls
batches with ``ctx.batch(phase)`` and returns the values to log. A strategy's behaviour must depend only on
``t`` and its ``state_dict`` so that resuming reproduces the run.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from taskfuse import models
from taskfuse.errors import TaskfuseError
from taskfuse.losses.base import LossTerms
from taskfuse.models.base import FusionModel, FusionOutput
from taskfuse.models.spec import MethodSpec
from taskfuse.registry import Registry
from taskfuse.tasks.base import TASKS
from taskfuse.tasks.segmentation.base import SegmentationOutput
from taskfuse.train.config import DatasetConfig, PhaseConfig, RunConfig, StrategyOptions
from taskfuse.train.data import Stream
from taskfuse.train.distributed import DistInfo, Wrapped
from taskfuse.train.optim import Optimised
from taskfuse.train.ranges import step_range

STRATEGIES: Registry = Registry("training strategy")
"""Strategies by name; each module of this package registers its own."""


@dataclass(frozen=True)
class Budget:
    """A training budget: how many optimisation steps each network gets, equal for the strategies a benchmark
    compares, or a handful for ``taskfuse train --quick`` (``taskfuse.train.resolve.QUICK``).

    ``fusion_steps`` counts every step of the fusion network (pretext and rounds included); a strategy with a
    task network in the loop splits them into ``rounds`` and gives that network ``task_steps`` per round
    (after ``warmup`` steps of learning-rate warm-up, and ``task_warmup`` steps before the first round); a
    teacher network (MAFS) gets ``teacher_steps``."""

    fusion_steps: int
    batch_size: int
    crop: int
    rounds: int = 1
    task_steps: int = 0
    pretext_steps: int = 0
    teacher_steps: int = 0
    teacher: str = ""
    warmup: int = 0
    task: str = "segmentation"
    """The task family of the network in the loop (``train.task``)."""
    task_model: str = ""
    """Its network (a name of the family's registry); empty = the config's."""
    task_warmup: int = 0
    """Steps the task network trains on the starting fusion network's images before the first round."""
    task_pretrained: str = ""
    """Backbone weights of that network (``imagenet`` or a ``.safetensors`` file); empty = the config's."""
    weights: tuple[float, ...] = ()
    """λ of the task loss in each round; empty = the round index (0, 1, 2, ...), the authors' schedule."""

    @property
    def phase(self) -> list[str]:
        """Batch and crop keys of a phase section."""
        return [f"batch_size={self.batch_size}", f"crop={self.crop}"]


@dataclass
class Context:
    """The loop's services for a strategy: device and processes, batches, wrapping and optimisers."""

    cfg: RunConfig
    info: DistInfo
    streams: dict[str, Stream]

    @property
    def device(self) -> torch.device:
        return self.info.device

    def batch(self, phase: str = "train") -> dict[str, Any]:
        with step_range("data"):
            return self.streams[phase].next()

    def length(self, phase: str = "train") -> int:
        """Steps of ``phase``: its ``iters``, or its ``epochs`` over that phase's batches."""
        stream = self.streams[phase]
        if stream.phase.iters > 0:
            return stream.phase.iters
        if stream.phase.epochs > 0:
            return max(1, round(stream.phase.epochs * stream.per_epoch))
        where = "train" if phase == "train" else f"train.{phase}"
        raise TaskfuseError(f"{where}: give the length of training as {where}.iters or {where}.epochs")

    def optimiser(self, params: Any, phase: str = "train", total: int | None = None) -> Optimised:
        """An optimiser for ``params`` with the settings of ``phase``; its schedule spans ``total`` steps
        (default: the phase's length)."""
        stream = self.streams[phase]
        return Optimised(params, stream.phase, self.length(phase) if total is None else total, stream.per_epoch)

    def autocast(self) -> contextlib.AbstractContextManager:
        """bfloat16 autocast on CUDA when ``train.amp``; a no-op on CPU."""
        if self.device.type == "cuda" and self.cfg.train.amp:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def wrap(self, module: nn.Module, fixed: bool = True) -> Wrapped:
        """``module`` as the step runs it (``Wrapped``); ``fixed``: every step that runs it uses the same
        parameters (False for a network run through several methods, or whose loss changes from step to step)."""
        return Wrapped(module, self.info, self.cfg.train, fixed)

    def frozen(self, module: nn.Module) -> Wrapped:
        """``module`` as the step runs it without training it (a frozen task network in the fusion loss, the
        fusion network making a task phase's images): compiled and in the layout ``train`` asks for, as ``wrap``'s
        networks are, but outside DDP. A wrapper apart from ``wrap``'s, so that the frozen pass (eval mode, no
        weight gradients) keeps compiled graphs of its own instead of running eagerly."""
        return Wrapped(module, self.info, self.cfg.train, trains=False)


class Strategy:
    """Base class; see the module docstring. ``Options`` is the dataclass of the ``strategy:`` section."""

    name: ClassVar[str] = ""
    task_guided: ClassVar[bool] = True
    """Trains with labels in the loop (every strategy but ``fusion_only``)."""
    Options: ClassVar[type[StrategyOptions]] = StrategyOptions

    def __init__(self, cfg: RunConfig, ctx: Context) -> None:
        self.cfg, self.ctx = cfg, ctx
        self.options = cfg.options

    @classmethod
    def check(cls, cfg: RunConfig) -> None:
        """Reject configs this strategy cannot train (called when the config is validated)."""

    @classmethod
    def phases(cls, cfg: RunConfig) -> dict[str, tuple[DatasetConfig, PhaseConfig]]:
        """Phase name -> (dataset, settings); every phase gets its own stream of batches."""
        return {"train": (cfg.data.train, cfg.train)}

    @classmethod
    def budget(cls, budget: Budget, spec: MethodSpec) -> list[str]:
        """``--set`` overrides that train ``spec``'s method with this strategy on ``budget`` (the fusion network
        takes exactly ``budget.fusion_steps`` steps)."""
        return [f"train.iters={budget.fusion_steps}", "train.epochs=0"]

    @classmethod
    def without_task(cls, budget: Budget, spec: MethodSpec) -> list[str] | None:
        """``--set`` overrides that train ``spec``'s method on ``budget`` the same way with the task term removed,
        when this strategy can do so itself (SeAFusion's rounds with λ = 0); None: train it with
        ``fusion_only`` instead."""
        return None

    @classmethod
    def fusion_phase(cls, cfg: RunConfig) -> PhaseConfig:
        """The settings the fusion network is optimised with (optimiser, learning rate, schedule)."""
        return cfg.train

    def total_steps(self) -> int:
        raise NotImplementedError

    def phase_at(self, step: int) -> str:
        """The phase (a key of ``phases``) that step ``step`` belongs to."""
        return "train"

    def train_step(self, step: int) -> dict[str, Tensor | float]:
        """Run step ``step``; the values to log by name (loss terms as tensors, see ``logged``)."""
        raise NotImplementedError

    def fusion_net(self) -> FusionModel:
        raise NotImplementedError

    def networks(self) -> dict[str, tuple[nn.Module, str, dict[str, Any]]]:
        """Networks saved in checkpoints: name -> (module, its registry name, its config)."""
        return {"fusion": (self.fusion_net(), self.cfg.method, self.cfg.model)}

    def segment(self, out: FusionOutput, batch: dict[str, Any]) -> Tensor | None:
        """Segmentation logits for validation (mIoU), or None when the strategy has no segmenter."""
        return None

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""


def make_fusion(cfg: RunConfig, device: torch.device) -> FusionModel:
    return models.create(cfg.method, **cfg.model).to(device)


def make_loss(cfg: RunConfig, labelled: bool = True, **extra: Any) -> Any:
    """The method's objective built from ``loss:`` (plus arguments the strategy supplies): the labelled one, or
    with ``labelled=False`` its form for pairs without labels (``MethodSpec.fusion_loss``); compiled with
    ``train.compile_loss``."""
    objective = models.get(cfg.method).objective(labelled, **cfg.loss, **extra)
    return compiled_objective(objective) if cfg.train.compile_loss else objective


def compiled_objective(objective: Any) -> Any:
    """``objective`` called through ``torch.compile``: a module compiled in place (``nn.Module.compile``: the same
    object, parameters and state dict), any other objective behind a ``CompiledObjective``."""
    if isinstance(objective, nn.Module):
        objective.compile()
        return objective
    return CompiledObjective(objective)


class CompiledObjective:
    """A plain objective called through ``torch.compile``, whose attributes are still its own: a strategy reading
    or setting one (``iterative_joint`` sets the segmentation weight each round) reaches the objective, and the
    compiled call sees the change (``tests/train/test_speed.py``)."""

    def __init__(self, objective: Any) -> None:
        object.__setattr__(self, "objective", objective)
        object.__setattr__(self, "compiled", torch.compile(objective))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.compiled(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.objective, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self.objective, name, value)


def as_float(out: FusionOutput) -> FusionOutput:
    """Outputs in float32, so losses are computed at full precision after a bf16 forward pass."""
    return FusionOutput(out.fused.float(), {k: v.float() if v.is_floating_point() else v for k, v in out.aux.items()})


def logged(terms: LossTerms, prefix: str = "") -> dict[str, Tensor]:
    """Loss terms to log, left as tensors: turning them into numbers every step would wait for the GPU; the
    loop converts them only on the steps it logs."""
    return {f"{prefix}{k}": v.detach() for k, v in {"total": terms.total, **terms.parts}.items()}


def seg_as_float(out: SegmentationOutput) -> SegmentationOutput:
    """Segmenter logits in float32 for the loss, after a bf16 forward pass."""
    return SegmentationOutput(out.logits.float(), [a.float() for a in out.aux])


ANNOTATIONS = ("label", "boxes", "keypoints")
"""Batch keys holding ground truth (``taskfuse.data.batching.collate``)."""


def reads(task: str) -> tuple[str, ...]:
    """The batch keys the task family ``task`` learns from: its target, and the boxes keypoints belong to."""
    target = TASKS.get(task).target
    return ("boxes", target) if target == "keypoints" else (target,)


def guided_by(task: str) -> list[str]:
    """The learned methods whose training ``task`` can guide (``MethodSpec.tasks``)."""
    return [n for n in models.names(learned=True) if task in models.get(n).tasks]


def check_task(cfg: RunConfig, task: str) -> None:
    """Refuse a ``train.task`` that is no task family or that the method cannot learn from."""
    if task not in TASKS:
        raise TaskfuseError(f"train.task {task!r}: not a task family; choose from {', '.join(TASKS.names())}")
    spec = models.get(cfg.method)
    if task not in spec.tasks:
        raise TaskfuseError(
            f"train.task {task}: {cfg.method} learns only from {' and '.join(spec.tasks)} annotations "
            f"({', '.join(reads(spec.tasks[0]))}), not from {'/'.join(reads(task))}; {task} guidance trains "
            f"{', '.join(guided_by(task)) or 'no registered method'}"
        )


def require_annotations(batch: dict[str, Any], task: str, who: str) -> None:
    """Raise, saying what the data holds, when ``batch`` lacks what ``task`` learns from."""
    missing = [k for k in reads(task) if k not in batch]
    if missing:
        have = [k for k in ANNOTATIONS if k in batch]
        raise TaskfuseError(
            f"{who} learns {task} from {'/'.join(reads(task))}, but data.train gives "
            f"{'/'.join(have) or 'no annotations'}; train on a dataset with {'/'.join(missing)}, set train.task to "
            f"what the data holds ({task} guidance trains {', '.join(guided_by(task))}), or use strategy fusion_only"
        )


def keep_annotations(batch: dict[str, Any], task: str) -> dict[str, Any]:
    """``batch`` without the annotations ``task`` does not learn from (a loss reading whatever it finds, such as
    FGFusion's foreground masks, then learns from this task alone)."""
    kept = reads(task)
    return {k: v for k, v in batch.items() if k not in ANNOTATIONS or k in kept}


@contextlib.contextmanager
def evaluating(*nets: nn.Module) -> Iterator[None]:
    """Eval mode inside, the previous modes restored after."""
    modes = [n.training for n in nets]
    for n in nets:
        n.eval()
    try:
        yield
    finally:
        for n, m in zip(nets, modes, strict=True):
            n.train(m)

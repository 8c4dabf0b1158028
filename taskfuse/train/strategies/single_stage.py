"""One network trained end to end with its own objective: the fusion image and the semantic outputs together.

PSFusion (seed 001) with its auxiliary semantic heads, FGFusion (seed 003) with its foreground supervision and
mask-weighted loss, DSIFuse (seed 004) with its multi-scale semantic prior loss all train this way: each step
runs the network on a batch and back-propagates ``loss(out, batch)``, where the method's loss object reads
what it needs from the batch (``label``, or ``boxes`` for foreground masks) and from ``out.aux``. The
optimiser, schedule, length, batch size and crop are ``train.*`` (the papers: SGD, lr 1e-3, poly decay); a
loss holding parameters of its own is optimised with the network, and a loss with state (``state_dict``) is
checkpointed. ``train.task`` picks the annotations that guide the loss (``detection``: FGFusion's and DSIFuse's
masks from boxes even where label masks exist); a method guided by label masks only (PSFusion) refuses boxes.
``train.train_only`` trains some of the network's modules alone: the claim benchmark warms up FGFusion's
foreground head that way before its task-guided continuation (``taskfuse.benchmark.continuation``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from torch import Tensor, nn

from taskfuse import models
from taskfuse.errors import TaskfuseError
from taskfuse.models.base import FusionModel, FusionOutput
from taskfuse.train.config import RunConfig, StrategyOptions
from taskfuse.train.strategies.base import (
    STRATEGIES,
    Context,
    Strategy,
    as_float,
    check_task,
    keep_annotations,
    logged,
    make_fusion,
    make_loss,
    reads,
    require_annotations,
)


@dataclass
class SingleStageOptions(StrategyOptions):
    task: str = ""
    """The annotations that guide the loss: ``segmentation`` (label masks) or ``detection`` (boxes, e.g. FGFusion's
    and DSIFuse's foreground masks), one of the method's ``MethodSpec.tasks``; the batches then carry that
    task's annotations only. Empty = whatever the data holds (label masks, else boxes)."""
    seg_key: str = ""
    """Key of ``out.aux`` holding class logits, whose mIoU validation reports; empty = the method's segmentation
    head (``MethodSpec.seg_head``); no such output: no mIoU."""
    train_only: list[str] = field(default_factory=list)
    """Top-level modules of the network trained alone (e.g. ``[foreground]``, FGFusion's head): every other
    parameter is frozen and every other module kept in eval mode, so its batch-norm statistics stay as they are
    too. Empty = the whole network."""


@STRATEGIES.register("single_stage")
@STRATEGIES.register("joint")
class SingleStage(Strategy):
    name = "single_stage"
    Options = SingleStageOptions
    fixed: ClassVar[bool] = True
    """Every step runs the network with the same loss (so with the same parameters)."""

    @classmethod
    def check(cls, cfg: RunConfig) -> None:
        if cfg.options.task:
            check_task(cfg, cfg.options.task)

    def __init__(self, cfg: RunConfig, ctx: Context, **loss_args: Any) -> None:
        super().__init__(cfg, ctx)
        self.net = make_fusion(cfg, ctx.device)
        self.frozen = freeze_except(self.net, self.options.train_only, cfg.method)
        self.loss = make_loss(cfg, **loss_args)
        extra: list[nn.Parameter] = []
        if isinstance(self.loss, nn.Module):
            self.loss.to(ctx.device)
            extra = list(self.loss.parameters())
        self.run = ctx.wrap(self.net, self.fixed)
        self.steps = ctx.length("train")
        self.opt = ctx.optimiser([*self.net.parameters(), *extra], "train")

    def total_steps(self) -> int:
        return self.steps

    def fusion_net(self) -> FusionModel:
        return self.net

    def loss_step(self, step: int, batch: dict[str, Any]) -> dict[str, Tensor | float]:
        """Forward, loss and update on one batch; the logged loss terms and learning rate."""
        batch = self.task_batch(batch)
        self.net.train()
        for module in self.frozen:
            module.eval()
        with self.ctx.autocast():
            terms = self.run.with_loss(lambda out: self.loss(as_float(out), batch), batch["ir"], batch["vi"])
        lr = self.opt.step(terms.total, step)
        return {**logged(terms), "lr": lr}

    def task_batch(self, batch: dict[str, Any]) -> dict[str, Any]:
        """``batch`` with the annotations of ``train.task`` only; without one, checked to hold annotations of a
        task the method learns from."""
        task = self.options.task
        if task:
            require_annotations(batch, task, self.cfg.method)
            return keep_annotations(batch, task)
        spec = models.get(self.cfg.method)
        if not any(all(k in batch for k in reads(t)) for t in spec.tasks):
            require_annotations(batch, spec.tasks[0], self.cfg.method)
        return batch

    def train_step(self, step: int) -> dict[str, Tensor | float]:
        return self.loss_step(step, self.ctx.batch("train"))

    def segment(self, out: FusionOutput, batch: dict[str, Any]) -> Tensor | None:
        return out.aux.get(self.options.seg_key or models.get(self.cfg.method).seg_head)

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"optimizer": self.opt.state_dict()}
        if hasattr(self.loss, "state_dict"):
            state["loss"] = self.loss.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.opt.load_state_dict(state["optimizer"])
        if "loss" in state:
            self.loss.load_state_dict(state["loss"])


def freeze_except(net: nn.Module, names: list[str], method: str) -> list[nn.Module]:
    """Freeze every parameter of ``net`` outside its top-level modules ``names`` (none: freeze nothing); the
    frozen top-level modules, which a step keeps in eval mode."""
    if not names:
        return []
    children = dict(net.named_children())
    unknown = [n for n in names if n not in children]
    if unknown:
        raise TaskfuseError(
            f"train.train_only: {', '.join(unknown)} is not a module of the {method} network; its modules: "
            f"{', '.join(children)}"
        )
    net.requires_grad_(False)
    for n in names:
        children[n].requires_grad_(True)
    return [module for n, module in children.items() if n not in names]

"""Training on unlabelled pairs (TNO, RoadScene, LLVIP or M3FD without their labels): the fusion loss alone.

Each method says what it keeps when no semantic label exists through its spec (``taskfuse.models.spec``): the
objective ``fusion_loss`` built from the same ``loss:`` keys (PSFusion: eq. 22 without the semantic terms; MAFS:
stage II's ``L_int + L_grad``), else its objective as it is on batches without ``label`` (SeAFusion without
``λ L_seg``; FGFusion and DSIFuse with their foreground masks from ``boxes`` when the dataset has them, else
without). A method with a ``pretext_loss`` (MAFS) may first run that label-free stage (``train.pretext``, given a
length).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from taskfuse import models
from taskfuse.models.base import FusionModel
from taskfuse.models.spec import MethodSpec
from taskfuse.train.config import DatasetConfig, PhaseConfig, RunConfig, StrategyOptions
from taskfuse.train.strategies.base import (
    STRATEGIES,
    Budget,
    Context,
    Strategy,
    as_float,
    logged,
    make_fusion,
    make_loss,
)


@dataclass
class FusionOnlyOptions(StrategyOptions):
    pretext: PhaseConfig = field(default_factory=PhaseConfig)
    """Networks with a masked-autoencoder pretext (MAFS): that label-free stage first; no length = skipped."""


def has_pretext(cfg: RunConfig) -> bool:
    p = cfg.options.pretext
    return models.get(cfg.method).pretext_loss is not None and (p.iters > 0 or p.epochs > 0)


@STRATEGIES.register("fusion_only")
class FusionOnly(Strategy):
    name = "fusion_only"
    task_guided = False
    Options = FusionOnlyOptions

    @classmethod
    def phases(cls, cfg: RunConfig) -> dict[str, tuple[DatasetConfig, PhaseConfig]]:
        extra = {"pretext": (cfg.data.train, cfg.options.pretext)} if has_pretext(cfg) else {}
        return {**extra, "train": (cfg.data.train, cfg.train)}

    @classmethod
    def budget(cls, budget: Budget, spec: MethodSpec) -> list[str]:
        """A network with a pretext stage spends ``budget.pretext_steps`` of its steps there."""
        if spec.pretext_loss is None:
            return super().budget(budget, spec)
        return [
            f"train.pretext.iters={budget.pretext_steps}",
            "train.pretext.epochs=0",
            f"train.iters={budget.fusion_steps - budget.pretext_steps}",
            "train.epochs=0",
        ]

    def __init__(self, cfg: RunConfig, ctx: Context) -> None:
        super().__init__(cfg, ctx)
        self.net = make_fusion(cfg, ctx.device)
        self.loss = make_loss(cfg, labelled=False)
        self.pretext_loss = models.get(cfg.method).pretext_loss
        self.pretext = ctx.length("pretext") if has_pretext(cfg) else 0
        self.run = ctx.wrap(self.net, fixed=not self.pretext)
        self.steps = ctx.length("train")
        self.opt = ctx.optimiser(self.net.parameters(), "train")
        self.pretext_opt = ctx.optimiser(self.net.parameters(), "pretext") if self.pretext else None

    def total_steps(self) -> int:
        return self.pretext + self.steps

    def fusion_net(self) -> FusionModel:
        return self.net

    def phase_at(self, step: int) -> str:
        return "pretext" if step < self.pretext else "train"

    def train_step(self, step: int) -> dict[str, Tensor | float]:
        phase = self.phase_at(step)
        batch = self.ctx.batch(phase)
        batch.pop("label", None)
        self.net.train()
        if self.pretext_opt is not None and phase == "pretext":
            loss = self.pretext_loss()
            with self.ctx.autocast():
                terms = self.run.with_loss(
                    lambda out: loss(as_float(out), batch), batch["ir"], batch["vi"], method="forward_pretext"
                )
            return {**logged(terms), "lr": self.pretext_opt.step(terms.total, step)}
        if self.pretext_opt is not None and step == self.pretext:
            self.pretext_opt.reset()
        with self.ctx.autocast():
            terms = self.run.with_loss(lambda out: self.loss(as_float(out), batch), batch["ir"], batch["vi"])
        return {**logged(terms), "lr": self.opt.step(terms.total, step - self.pretext)}

    def state_dict(self) -> dict[str, Any]:
        state = {"optimizer": self.opt.state_dict()}
        if self.pretext_opt is not None:
            state["pretext_optimizer"] = self.pretext_opt.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.opt.load_state_dict(state["optimizer"])
        if self.pretext_opt is not None:
            self.pretext_opt.load_state_dict(state["pretext_optimizer"])

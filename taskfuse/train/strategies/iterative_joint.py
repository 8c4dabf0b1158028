"""SeAFusion's joint adaptive training (Tang et al. 2022; seed 000 Sec. 4 trains this way): rounds that
alternate the fusion network and the segmenter. Registered as ``iterative_joint`` and ``alternating``.

Round ``r`` of ``train.rounds`` (authors' ``train.py``: 4):

(a) ``train.fusion`` phase (``epochs`` per round, the code's 10): the fusion network learns
    ``L_fusion + λ_r L_seg`` (seed 000 eq. 2) with ``L_seg = L_main + 0.1 L_aux`` (eq. 9, ``loss.aux_weight``)
    from the segmenter, frozen and in eval mode, applied to the fused luminance recombined with the visible
    chroma. ``λ_r`` is ``train.seg_weight_per_round[r]``; the code uses the round index, 0, 1, 2, 3, so
    round 0 trains on the fusion loss alone. The optimiser starts afresh every round (the code's new Adam,
    lr 1e-3 decayed by 0.75 per epoch).
(b) ``train.segmentation`` phase (``iters_per_round``, the code's 20000): the segmenter (BiSeNet) learns
    OHEM cross-entropy ``L_main + aux_weight L_aux`` (0.75 in this phase of the code) on images the current
    fusion network fuses on the fly (no gradient into it). SGD with warm-up and poly decay over
    ``max_iters`` (the code's 80000 = 4 x 20000), its momentum and schedule carried from round to round.

The fused images are made on the fly rather than written to disk between phases (the code's ``run_fusion``):
the same images without the round trip through 8-bit files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch
from torch import Tensor

from taskfuse.data.color import recombine
from taskfuse.errors import TaskfuseError
from taskfuse.models.base import FusionModel, FusionOutput
from taskfuse.models.spec import MethodSpec
from taskfuse.tasks import segmentation
from taskfuse.tasks.segmentation.loss import main_aux_loss, ohem_cross_entropy
from taskfuse.train.config import DatasetConfig, PhaseConfig, RunConfig, StrategyOptions
from taskfuse.train.strategies.base import (
    STRATEGIES,
    Budget,
    Context,
    Strategy,
    as_float,
    evaluating,
    logged,
    make_fusion,
    make_loss,
    require_labels,
    seg_as_float,
)


def _fusion_phase() -> PhaseConfig:
    return PhaseConfig(
        optimizer="adam", lr=1e-3, lr_schedule="step", lr_decay=0.75, epochs=10, batch_size=16, crop="full"
    )


@dataclass
class SegmentationPhase(PhaseConfig):
    """The segmenter's phase: PhaseConfig plus its length per round and its loss."""

    iters_per_round: int = 20000
    """Segmenter steps in each round."""
    max_iters: int = 0
    """Length of the segmenter's schedule over all rounds; 0 = rounds x iters_per_round."""
    aux_weight: float = 0.75
    """Weight of the auxiliary logits in the segmenter's own loss."""
    ohem_thresh: float = 0.7
    """OHEM probability threshold of the segmenter's loss (at least 1/16 of the pixels are kept)."""


def _seg_phase() -> SegmentationPhase:
    return SegmentationPhase(
        optimizer="sgd",
        lr=1e-2,
        momentum=0.9,
        weight_decay=5e-4,
        lr_schedule="poly",
        poly_power=0.9,
        warmup_iters=1000,
        warmup_start_lr=1e-5,
        batch_size=16,
        crop="full",
    )


@dataclass
class IterativeJointOptions(StrategyOptions):
    rounds: int = 4
    """Rounds of (fusion phase, segmentation phase)."""
    seg_weight_per_round: list[float] = field(default_factory=lambda: [0.0, 1.0, 2.0, 3.0])
    """λ of the semantic loss in the fusion phase of each round (one per round)."""
    num_classes: int = 9
    """Segmentation classes (9 for MSRS, MFNet and the synthetic scenes)."""
    segmenter: str = "bisenet"
    """Segmenter (taskfuse.tasks.segmentation name)."""
    segmenter_args: dict[str, Any] = field(default_factory=dict)
    """Extra keyword arguments of the segmenter."""
    seg_pretrained: str = ""
    """Optional .safetensors weights the segmenter starts from (e.g. ImageNet ResNet-18)."""
    fusion: PhaseConfig = field(default_factory=_fusion_phase)
    """The fusion network's phase of every round."""
    segmentation: SegmentationPhase = field(default_factory=_seg_phase)
    """The segmenter's phase of every round."""


@STRATEGIES.register("iterative_joint")
@STRATEGIES.register("alternating")
class IterativeJoint(Strategy):
    name = "iterative_joint"
    Options = IterativeJointOptions

    @classmethod
    def check(cls, cfg: RunConfig) -> None:
        o: IterativeJointOptions = cfg.options
        if o.rounds < 1 or len(o.seg_weight_per_round) != o.rounds:
            raise TaskfuseError(
                f"train.seg_weight_per_round has {len(o.seg_weight_per_round)} values for {o.rounds} rounds; "
                "give one λ per round"
            )
        if o.segmentation.iters or o.segmentation.epochs:
            raise TaskfuseError("train.segmentation: give its length per round as iters_per_round")

    @classmethod
    def budget(cls, budget: Budget, spec: MethodSpec) -> list[str]:
        """``rounds`` rounds, each ``fusion_steps / rounds`` fusion steps with λ = round index (the authors'
        ``train.py``) at a constant rate (the optimiser restarts every round), then ``task_steps`` segmenter
        steps."""
        r = budget.rounds
        return [
            f"train.rounds={r}",
            f"train.seg_weight_per_round={list(range(r))}",
            f"train.fusion.iters={budget.fusion_steps // r}",
            "train.fusion.epochs=0",
            "train.fusion.lr_schedule=constant",
            *(f"train.fusion.{p}" for p in budget.phase),
            f"train.segmentation.iters_per_round={budget.task_steps}",
            f"train.segmentation.max_iters={r * budget.task_steps}",
            f"train.segmentation.warmup_iters={budget.warmup}",
            *(f"train.segmentation.{p}" for p in budget.phase),
        ]

    @classmethod
    def fusion_phase(cls, cfg: RunConfig) -> PhaseConfig:
        return cfg.options.fusion

    @classmethod
    def phases(cls, cfg: RunConfig) -> dict[str, tuple[DatasetConfig, PhaseConfig]]:
        return {
            "fusion": (cfg.data.train, cfg.options.fusion),
            "segmentation": (cfg.data.train, cfg.options.segmentation),
        }

    def __init__(self, cfg: RunConfig, ctx: Context) -> None:
        super().__init__(cfg, ctx)
        o: IterativeJointOptions = self.options
        self.net = make_fusion(cfg, ctx.device)
        self.loss = make_loss(cfg)
        self.seg = segmentation.create(o.segmenter, o.num_classes, 3, **o.segmenter_args).to(ctx.device)
        if o.seg_pretrained:
            segmentation.load_pretrained(self.seg, o.seg_pretrained)
        self.run_net, self.run_seg = ctx.wrap(self.net), ctx.wrap(self.seg)
        seg = o.segmentation
        self.fusion_len = ctx.length("fusion")
        self.round_len = self.fusion_len + seg.iters_per_round
        self.opt = ctx.optimiser(self.net.parameters(), "fusion")
        self.seg_opt = ctx.optimiser(
            self.seg.parameters(), "segmentation", seg.max_iters or o.rounds * seg.iters_per_round
        )
        self.seg_criterion = partial(ohem_cross_entropy, thresh=seg.ohem_thresh)

    def total_steps(self) -> int:
        return self.options.rounds * self.round_len

    def fusion_net(self) -> FusionModel:
        return self.net

    def networks(self) -> dict[str, tuple[Any, str, dict[str, Any]]]:
        o = self.options
        return {
            **super().networks(),
            "segmenter": (self.seg, o.segmenter, {"num_classes": o.num_classes, **o.segmenter_args}),
        }

    def locate(self, step: int) -> tuple[int, str, int]:
        """(round, "fusion" or "segmentation", step within that phase) of global step ``step``."""
        r, inner = divmod(step, self.round_len)
        return (r, "fusion", inner) if inner < self.fusion_len else (r, "segmentation", inner - self.fusion_len)

    def phase_at(self, step: int) -> str:
        return self.locate(step)[1]

    def train_step(self, step: int) -> dict[str, Tensor | float]:
        r, phase, inner = self.locate(step)
        batch = self.ctx.batch(phase)
        if phase == "fusion":
            return {**self.fusion_step(r, inner, batch), "round": float(r)}
        t = r * self.options.segmentation.iters_per_round + inner
        return {**self.segmenter_step(t, batch), "round": float(r)}

    def fusion_step(self, r: int, inner: int, batch: dict[str, Any]) -> dict[str, Tensor | float]:
        weight = self.options.seg_weight_per_round[r]
        if inner == 0:
            self.opt.reset()
        self.net.train()
        self.seg.requires_grad_(False)
        with self.ctx.autocast(), evaluating(self.seg):
            out = self.run_net(batch["ir"], batch["vi"])
            seg_out = None
            if weight > 0:
                require_labels(batch, "iterative_joint")
                seg_out = self.seg(recombine(out.fused, batch["vi"]))
        self.loss.seg_weight = weight
        terms = self.loss(as_float(out), batch, None if seg_out is None else seg_as_float(seg_out))
        lr = self.opt.step(terms.total, inner)
        return {**logged(terms), "lr": lr}

    def segmenter_step(self, t: int, batch: dict[str, Any]) -> dict[str, Tensor | float]:
        require_labels(batch, "iterative_joint")
        self.seg.requires_grad_(True)
        self.seg.train()
        with torch.no_grad(), self.ctx.autocast(), evaluating(self.net):
            fused = recombine(self.net(batch["ir"], batch["vi"]).fused.float(), batch["vi"])
        with self.ctx.autocast():
            out = seg_as_float(self.run_seg(fused))
        terms = main_aux_loss(out, batch["label"], self.options.segmentation.aux_weight, self.seg_criterion)
        lr = self.seg_opt.step(terms.total, t)
        return {**logged(terms, "seg/"), "lr_seg": lr}

    def segment(self, out: FusionOutput, batch: dict[str, Any]) -> Tensor | None:
        with evaluating(self.seg):
            return self.seg(recombine(out.fused.float(), batch["vi"])).logits

    def state_dict(self) -> dict[str, Any]:
        return {"optimizer": self.opt.state_dict(), "seg_optimizer": self.seg_opt.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.opt.load_state_dict(state["optimizer"])
        self.seg_opt.load_state_dict(state["seg_optimizer"])

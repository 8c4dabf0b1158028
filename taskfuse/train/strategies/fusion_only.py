"""Training on unlabelled pairs (TNO, RoadScene, LLVIP or M3FD without their labels): the fusion loss alone.

What each method keeps when no semantic label exists:

* ``seafusion``: its fusion loss (``original`` or seed 000's ``agf``) without ``λ L_seg``; no segmenter.
* ``psfusion``: eq. 22 without the semantic terms: ``λ_f (L_int + L_text + α L_corr) + λ_sf (L_sf^ir +
  L_sf^vi)``. The salient-target mask of eq. 17 needs labels; without them ``M_tar = 0``, so the intensity
  term weights each source by its contrast mask alone. The semantic heads are left untrained.
* ``fgfusion``: its loss with the foreground mask from ``boxes`` when the dataset has them (M3FD, LLVIP),
  else ``W_mask = 1`` and no foreground term.
* ``dsifuse``: ``μ L_int + ζ L_gra`` with ``M_label`` from boxes when present, else 0; no ``L_sem``.
* ``mafs``: optionally the label-free stage-I masked-autoencoder pretext (``train.pretext``, given a length),
  then the stage-II fusion loss ``L_int + L_grad`` (eqs. 15-16); no segmentation, distillation or task
  weighting.
* a method of your own: its loss as it is, on batches without ``label``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from taskfuse import models
from taskfuse.data.color import luminance
from taskfuse.losses.base import LossTerms
from taskfuse.losses.fusion_terms import (
    contrast_masks,
    correlation_loss,
    intensity_max_loss,
    mask_intensity_loss,
    scene_fidelity_loss,
    texture_max_loss,
)
from taskfuse.losses.mafs import MAFSPretextLoss
from taskfuse.models.base import FusionModel, FusionOutput
from taskfuse.train.config import DatasetConfig, PhaseConfig, RunConfig
from taskfuse.train.strategies import STRATEGIES
from taskfuse.train.strategies.base import Context, Strategy, as_float, logged, make_fusion, make_loss

LossFn = Callable[[FusionOutput, Mapping[str, Any]], LossTerms]


def psfusion_fusion_loss(loss: Any) -> LossFn:
    """PSFusion's eq. 22 without the semantic terms, ``M_tar = 0``, with the weights of ``loss``."""

    def fn(out: FusionOutput, batch: Mapping[str, Any]) -> LossTerms:
        ir, fused = batch["ir"], out.fused
        vi = luminance(batch["vi"])
        m_ir, m_vi = contrast_masks(ir, vi, loss.variance_window, loss.variance_sigma)
        parts = {
            "int": loss.lambda_f * mask_intensity_loss(fused, ir, vi, m_ir, m_vi, torch.zeros_like(fused)),
            "text": loss.lambda_f * texture_max_loss(fused, ir, vi),
            "corr": loss.lambda_f * loss.alpha * correlation_loss(fused, ir, vi),
            "sf_ir": loss.lambda_sf * scene_fidelity_loss(out.aux["ir_rec"], ir),
            "sf_vi": loss.lambda_sf * scene_fidelity_loss(out.aux["vi_rec"], vi),
        }
        return LossTerms(torch.stack(list(parts.values())).sum(), {k: v.detach() for k, v in parts.items()})

    return fn


def mafs_fusion_loss(out: FusionOutput, batch: Mapping[str, Any]) -> LossTerms:
    """MAFS's stage-II fusion loss, ``L_int + L_grad`` (eqs. 15-16)."""
    ir, vi = batch["ir"], luminance(batch["vi"])
    parts = {"int": intensity_max_loss(out.fused, ir, vi), "grad": texture_max_loss(out.fused, ir, vi)}
    return LossTerms(parts["int"] + parts["grad"], {k: v.detach() for k, v in parts.items()})


def unlabelled_loss(cfg: RunConfig) -> LossFn:
    """The loss ``method`` trains with on unlabelled pairs (see the module docstring)."""
    if cfg.method == "psfusion":
        return psfusion_fusion_loss(make_loss(cfg))
    if cfg.method == "mafs":
        return mafs_fusion_loss
    return make_loss(cfg)


@dataclass
class FusionOnlyOptions:
    pretext: PhaseConfig = field(default_factory=PhaseConfig)
    """Networks with a masked-autoencoder pretext (MAFS): that label-free stage first; no length = skipped."""


def has_pretext(cfg: RunConfig) -> bool:
    p = cfg.options.pretext
    return hasattr(models.MODELS.get(cfg.method), "forward_pretext") and (p.iters > 0 or p.epochs > 0)


@STRATEGIES.register("fusion_only")
class FusionOnly(Strategy):
    name = "fusion_only"
    Options = FusionOnlyOptions

    @classmethod
    def phases(cls, cfg: RunConfig) -> dict[str, tuple[DatasetConfig, PhaseConfig]]:
        extra = {"pretext": (cfg.data.train, cfg.options.pretext)} if has_pretext(cfg) else {}
        return {**extra, "train": (cfg.data.train, cfg.train)}

    def __init__(self, cfg: RunConfig, ctx: Context) -> None:
        super().__init__(cfg, ctx)
        self.net = make_fusion(cfg, ctx.device)
        self.loss = unlabelled_loss(cfg)
        self.run = ctx.wrap(self.net)
        self.pretext = ctx.length("pretext") if has_pretext(cfg) else 0
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
            with self.ctx.autocast():
                out = self.run.call("forward_pretext", batch["ir"], batch["vi"])
            terms = MAFSPretextLoss()(as_float(out), batch)
            return {**logged(terms), "lr": self.pretext_opt.step(terms.total, step)}
        if self.pretext_opt is not None and step == self.pretext:
            self.pretext_opt.reset()
        with self.ctx.autocast():
            out = self.run(batch["ir"], batch["vi"])
        terms = self.loss(as_float(out), batch)
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

"""Loss of the built-in default network (``models/lite/network.py``), trained on unlabelled pairs.

``L = w_int L_int + w_grad L_grad + w_ssim L_ssim + w_wcorr L_wcorr + w_scd L_scd + w_vif L_vif + w_en L_en``
on the fused luminance:

* ``L_int``: seed 000 eq. 4, ``mean|I_f - max(I_ir, I_vi)|`` (``target: max``), or the distance to the mean
  of the sources (``target: mean``), which keeps VIS brightness where the IR image is bright and flat;
* ``L_grad``: the signed gradient of the stronger source (``fusion_terms.gradient_selection_loss``;
  ``grad: vector``) or seed 000 eq. 5's magnitude form (``grad: magnitude``), the source gradients scaled by
  ``grad_gain`` (> 1 asks for detail enhancement, not only preservation);
* ``L_ssim``: ``1 - mean SSIM`` with both sources (``fusion_terms.ssim_loss``), the structural term of
  FGFusion's loss (seed 003 eq. 7) with Wang et al.'s SSIM instead of a global correlation;
* ``L_wcorr``: seed 000 eqs. 7-8, the edge-weighted correlation with both sources;
* ``L_scd``, ``L_vif``, ``L_en``: the SCD, VIF and EN measures the model is judged by, as losses
  (``fusion_terms.difference_correlation_loss``, ``vif_loss``, ``entropy_loss``): keep the full contrast of
  each source instead of an average, and use the whole gray range.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from taskfuse.data.color import luminance
from taskfuse.errors import TaskfuseError
from taskfuse.losses.base import LossTerms
from taskfuse.losses.fusion_terms import (
    difference_correlation_loss,
    edge_weighted_correlation_loss,
    entropy_loss,
    gradient_selection_loss,
    intensity_max_loss,
    ssim_loss,
    texture_max_loss,
    vif_loss,
)
from taskfuse.models.base import FusionOutput


class LiteLoss:
    """The weighted sum above; ``parts`` holds each weighted term that has a non-zero weight."""

    def __init__(
        self,
        int_weight: float = 1.0,
        target: str = "max",
        grad_weight: float = 10.0,
        grad: str = "vector",
        grad_gain: float = 1.0,
        ssim_weight: float = 0.0,
        wcorr_weight: float = 0.0,
        scd_weight: float = 0.0,
        vif_weight: float = 0.0,
        en_weight: float = 0.0,
    ) -> None:
        if target not in ("max", "mean"):
            raise TaskfuseError(f"loss.target {target!r}: use max or mean")
        if grad not in ("vector", "magnitude"):
            raise TaskfuseError(f"loss.grad {grad!r}: use vector or magnitude")
        self.int_weight, self.target, self.grad_weight, self.grad = int_weight, target, grad_weight, grad
        self.grad_gain = grad_gain
        self.ssim_weight, self.wcorr_weight = ssim_weight, wcorr_weight
        self.scd_weight, self.vif_weight, self.en_weight = scd_weight, vif_weight, en_weight

    def __call__(self, out: FusionOutput, batch: Mapping[str, Any]) -> LossTerms:
        fused, ir = out.fused, batch["ir"]
        vi = luminance(batch["vi"])
        select = gradient_selection_loss if self.grad == "vector" else texture_max_loss
        parts: dict[str, Tensor] = {}
        if self.int_weight:
            if self.target == "max":
                intensity = intensity_max_loss(fused, ir, vi)
            else:
                intensity = (fused - (ir + vi) / 2).abs().mean()
            parts["int"] = self.int_weight * intensity
        if self.grad_weight:
            parts["grad"] = self.grad_weight * select(fused, self.grad_gain * ir, self.grad_gain * vi)
        if self.ssim_weight:
            parts["ssim"] = self.ssim_weight * ssim_loss(fused, ir, vi)
        if self.wcorr_weight:
            parts["wcorr"] = self.wcorr_weight * edge_weighted_correlation_loss(fused, ir, vi)
        if self.scd_weight:
            parts["scd"] = self.scd_weight * difference_correlation_loss(fused, ir, vi)
        if self.vif_weight:
            parts["vif"] = self.vif_weight * vif_loss(fused, ir, vi)
        if self.en_weight:
            parts["en"] = self.en_weight * entropy_loss(fused)
        total = torch.stack(list(parts.values())).sum()
        return LossTerms(total, {k: v.detach() for k, v in parts.items()})

"""PSFusion's full objective (seed 001, eqs. 16-22).

Binary and boundary targets come from the semantic label (``taskfuse.losses.masks``), as does the
salient-target mask ``M_tar`` of eq. 17 (after STDFusionNet): 1 on pixels of ``target_classes`` (default car,
person, bike, the thermally salient MSRS classes).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from taskfuse.data.classes import IGNORE_INDEX
from taskfuse.data.color import luminance
from taskfuse.errors import TaskfuseError
from taskfuse.losses.base import LossTerms
from taskfuse.losses.fusion_terms import (
    contrast_masks,
    correlation_loss,
    mask_intensity_loss,
    scene_fidelity_loss,
    texture_max_loss,
)
from taskfuse.losses.masks import BINARY_WEIGHTS, binary_target, boundary_target, foreground_from_labels
from taskfuse.models.base import FusionOutput
from taskfuse.tasks.segmentation.loss import ohem_cross_entropy, weighted_cross_entropy

TARGET_CLASSES = (1, 2, 3)
"""MSRS / MFNet car, person, bike: the classes whose pixels form the salient-target mask by default."""


class PSFusionLoss:
    """``L = λ_f (L_int + L_text + α L_corr) + λ_sf (L_sf^vi + L_sf^ir) + λ_se (L_se + L_bd + L_bi)`` (eq. 22).

    * ``L_int``: contrast- and target-masked intensity (eqs. 16-17) against the IR image and the visible Y;
    * ``L_text``: max-gradient texture (eq. 18); ``L_corr``: inverse correlation (eq. 19);
    * ``L_sf``: scene fidelity of the IR and visible-Y reconstructions (eq. 21);
    * ``L_se``: OHEM cross-entropy of the semantic logits (threshold 0.75 and at least 1/16 of the pixels,
      from the authors' ``train.py``);
    * ``L_bd``: cross-entropy of the boundary logits; ``L_bi``: class-weighted cross-entropy of the binary
      logits.

    Weights λ_f = 10, λ_sf = 5, λ_se = 10, α = 0.1 (section 4.1). ``parts`` holds every term times its
    weight, so they sum to ``total``. The batch needs ``ir``, ``vi`` and ``label``.
    """

    def __init__(
        self,
        lambda_f: float = 10.0,
        lambda_sf: float = 5.0,
        lambda_se: float = 10.0,
        alpha: float = 0.1,
        target_classes: Sequence[int] = TARGET_CLASSES,
        binary_weights: Sequence[float] = BINARY_WEIGHTS,
        ohem_thresh: float = 0.75,
        boundary_kernel: int = 3,
        variance_window: int = 9,
        variance_sigma: float = 1.5,
        ignore_index: int = IGNORE_INDEX,
    ) -> None:
        self.lambda_f, self.lambda_sf, self.lambda_se, self.alpha = lambda_f, lambda_sf, lambda_se, alpha
        self.target_classes = tuple(target_classes)
        self.binary_weights = tuple(binary_weights)
        self.ohem_thresh = ohem_thresh
        self.boundary_kernel = boundary_kernel
        self.variance_window, self.variance_sigma = variance_window, variance_sigma
        self.ignore_index = ignore_index

    def __call__(self, out: FusionOutput, batch: Mapping[str, Tensor]) -> LossTerms:
        missing = [k for k in ("ir", "vi", "label") if k not in batch]
        missing += [f"aux[{k!r}]" for k in ("semantic", "boundary", "binary", "ir_rec", "vi_rec") if k not in out.aux]
        if missing:
            raise TaskfuseError(
                f"PSFusion loss needs {', '.join(missing)}; train psfusion on a labelled dataset (MSRS/MFNet) "
                "with the psfusion model's outputs"
            )
        ir, label, fused = batch["ir"], batch["label"], out.fused
        vi = luminance(batch["vi"])
        m_ir, m_vi = contrast_masks(ir, vi, self.variance_window, self.variance_sigma)
        ignore = self.ignore_index
        m_tar = foreground_from_labels(label, self.target_classes, ignore).to(fused.dtype)
        parts = {
            "int": self.lambda_f * mask_intensity_loss(fused, ir, vi, m_ir, m_vi, m_tar),
            "text": self.lambda_f * texture_max_loss(fused, ir, vi),
            "corr": self.lambda_f * self.alpha * correlation_loss(fused, ir, vi),
            "sf_ir": self.lambda_sf * scene_fidelity_loss(out.aux["ir_rec"], ir),
            "sf_vi": self.lambda_sf * scene_fidelity_loss(out.aux["vi_rec"], vi),
            "se": self.lambda_se
            * ohem_cross_entropy(out.aux["semantic"], label, self.ohem_thresh, ignore_index=ignore),
            "bd": self.lambda_se
            * F.cross_entropy(
                out.aux["boundary"], boundary_target(label, self.boundary_kernel, ignore), ignore_index=ignore
            ),
            "bi": self.lambda_se
            * weighted_cross_entropy(out.aux["binary"], binary_target(label, ignore), self.binary_weights, ignore),
        }
        total = torch.stack(list(parts.values())).sum()
        return LossTerms(total, {k: v.detach() for k, v in parts.items()})


class PSFusionFusionLoss(PSFusionLoss):
    """Eq. 22 without the semantic terms, for pairs without labels (``fusion_only``):
    ``λ_f (L_int + L_text + α L_corr) + λ_sf (L_sf^ir + L_sf^vi)``. The salient-target mask of eq. 17 needs
    labels; without them ``M_tar = 0``, so the intensity term weights each source by its contrast mask alone.
    The semantic heads are left untrained."""

    def __call__(self, out: FusionOutput, batch: Mapping[str, Tensor]) -> LossTerms:
        ir, fused = batch["ir"], out.fused
        vi = luminance(batch["vi"])
        m_ir, m_vi = contrast_masks(ir, vi, self.variance_window, self.variance_sigma)
        parts = {
            "int": self.lambda_f * mask_intensity_loss(fused, ir, vi, m_ir, m_vi, torch.zeros_like(fused)),
            "text": self.lambda_f * texture_max_loss(fused, ir, vi),
            "corr": self.lambda_f * self.alpha * correlation_loss(fused, ir, vi),
            "sf_ir": self.lambda_sf * scene_fidelity_loss(out.aux["ir_rec"], ir),
            "sf_vi": self.lambda_sf * scene_fidelity_loss(out.aux["vi_rec"], vi),
        }
        return LossTerms(torch.stack(list(parts.values())).sum(), {k: v.detach() for k, v in parts.items()})

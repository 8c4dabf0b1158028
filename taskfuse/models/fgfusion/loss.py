"""FGFusion objective (seed 003, eqs. 8-11): structure, intensity, gradient and foreground terms, with the
per-pixel terms weighted towards the foreground.

``L = λ1 L_ssim + Σ(λ2 L_int + λ3 L_grad + λ4 L_ex) ⊙ W_mask / Σ W_mask`` with λ = 1, 10, 10, 5 and
``W_mask`` = 3 on foreground pixels, 1 elsewhere (Sec. 3.2):

* ``L_ssim``: structural similarity by normalised cross-correlation, ``1 - (NCC(I_f, I_ir) + NCC(I_f, I_vi)) / 2``
  with per-image NCC (Pearson correlation, ``fusion_terms.pearson``); the paper names the measure only;
* ``L_int`` (eq. 10): squared error against the source image of larger variance
  (``fusion_terms.variance_selected_error``);
* ``L_grad`` (eq. 9): ``| |∇I_f| - max(|∇I_ir|, |∇I_vi|) |`` with Sobel magnitudes;
* ``L_ex`` (eq. 11): binary cross-entropy of the foreground prediction (natural log; eq. 11 writes lg).

The foreground mask comes from the batch (``taskfuse.losses.masks.batch_foreground``: ``label`` with
``object_classes``, or ``boxes``). Without either, ``W_mask = 1`` and ``L_ex`` is left out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from taskfuse.data.color import luminance
from taskfuse.errors import TaskfuseError
from taskfuse.losses.base import LossTerms
from taskfuse.losses.fusion_terms import pearson, variance_selected_error
from taskfuse.losses.masks import batch_foreground
from taskfuse.models.base import FusionOutput
from taskfuse.nn.sobel import sobel_abs


class FGFusionLoss:
    """Eq. 8. ``object_classes``: label values that count as foreground (None: every class but 0)."""

    def __init__(
        self,
        lambda_ssim: float = 1.0,
        lambda_int: float = 10.0,
        lambda_grad: float = 10.0,
        lambda_ex: float = 5.0,
        mask_weight: float = 3.0,
        object_classes: Sequence[int] | None = None,
    ) -> None:
        self.lambda_ssim, self.lambda_int = lambda_ssim, lambda_int
        self.lambda_grad, self.lambda_ex = lambda_grad, lambda_ex
        self.mask_weight = mask_weight
        self.object_classes = None if object_classes is None else tuple(object_classes)

    def __call__(self, out: FusionOutput, batch: Mapping[str, Any]) -> LossTerms:
        if "foreground" not in out.aux:
            raise TaskfuseError("FGFusion loss needs aux['foreground']; train it with the fgfusion model's outputs")
        ir, fused = batch["ir"], out.fused
        vi = luminance(batch["vi"])
        fg = batch_foreground(batch, self.object_classes)
        weight = torch.ones_like(fused) if fg is None else 1 + (self.mask_weight - 1) * fg
        maps = {
            "int": self.lambda_int * variance_selected_error(fused, ir, vi),
            "grad": self.lambda_grad * (sobel_abs(fused) - torch.maximum(sobel_abs(ir), sobel_abs(vi))).abs(),
        }
        if fg is not None:
            maps["ex"] = self.lambda_ex * F.binary_cross_entropy_with_logits(
                out.aux["foreground"], fg, reduction="none"
            )
        norm = weight.sum()
        parts = {"ssim": self.lambda_ssim * (1 - (pearson(fused, ir) + pearson(fused, vi)).mean() / 2)}
        parts.update({k: (m * weight).sum() / norm for k, m in maps.items()})
        total = torch.stack(list(parts.values())).sum()
        return LossTerms(total, {k: v.detach() for k, v in parts.items()})

"""SeAFusion's losses: the original content loss and the application-guided loss of seed 000.

* ``variant="original"`` (Tang et al. 2022, authors' ``loss.py``): ``L_int + 10 L_text``;
* ``variant="agf"`` (seed 000 eq. 3 with α = β = 10, γ = 0.01, section 4):
  ``L_int + 10 L_text + 10 L_color + 0.01 L_wcorr``.

With segmenter outputs the total is ``L_fusion + λ L_seg`` (seed 000 eq. 2) where ``L_seg = L_main + 0.1
L_aux`` (eq. 9) on OHEM cross-entropies (threshold 0.7, at least 1/16 of the pixels, authors' ``train.py``).
The segmenter reads the fused luminance recombined with the visible chroma (``taskfuse.data.color.recombine``).
λ follows the joint adaptive training schedule: the authors' ``train.py`` sets it to the round index
(0, 1, 2, 3 over four rounds), so the training strategy overwrites ``seg_weight`` each round; the default 1.0 is
the first round that uses the semantic loss.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from taskfuse.data.color import luminance
from taskfuse.errors import TaskfuseError
from taskfuse.losses.base import LossTerms
from taskfuse.losses.fusion_terms import (
    color_consistency_loss,
    edge_weighted_correlation_loss,
    intensity_max_loss,
    texture_max_loss,
)
from taskfuse.models.base import FusionOutput
from taskfuse.tasks.segmentation.base import SegmentationOutput
from taskfuse.tasks.segmentation.loss import main_aux_loss

VARIANTS = ("original", "agf")


class SeAFusionLoss:
    """Fusion loss of SeAFusion (``variant="original"``) or of seed 000 (``"agf"``), plus ``λ L_seg``.

    Call as ``loss(out, batch)`` for the fusion loss alone or ``loss(out, batch, seg)`` with the segmenter's
    output on the recombined fused image; ``batch["label"]`` is then required. ``parts`` holds the weighted
    terms (``int``, ``text``, and for ``agf`` ``color`` and ``wcorr``; ``seg`` with segmenter outputs).
    """

    def __init__(
        self,
        variant: str = "agf",
        text_weight: float = 10.0,
        color_weight: float = 10.0,
        wcorr_weight: float = 0.01,
        gamma: float = 0.1,
        seg_weight: float = 1.0,
        aux_weight: float = 0.1,
    ) -> None:
        if variant not in VARIANTS:
            raise TaskfuseError(f"loss.variant {variant!r} is not one of {', '.join(VARIANTS)}; fix the config")
        self.variant = variant
        self.text_weight, self.color_weight, self.wcorr_weight = text_weight, color_weight, wcorr_weight
        self.gamma = gamma
        self.seg_weight, self.aux_weight = seg_weight, aux_weight

    def __call__(
        self, out: FusionOutput, batch: Mapping[str, Tensor], seg: SegmentationOutput | None = None
    ) -> LossTerms:
        fused, ir, vi_rgb = out.fused, batch["ir"], batch["vi"]
        vi = luminance(vi_rgb)
        parts = {
            "int": intensity_max_loss(fused, ir, vi),
            "text": self.text_weight * texture_max_loss(fused, ir, vi),
        }
        if self.variant == "agf":
            parts["color"] = self.color_weight * color_consistency_loss(fused, vi_rgb, self.gamma)
            parts["wcorr"] = self.wcorr_weight * edge_weighted_correlation_loss(fused, ir, vi)
        if seg is not None:
            if "label" not in batch:
                raise TaskfuseError("the semantic loss needs batch['label']; train on a labelled dataset")
            parts["seg"] = self.seg_weight * main_aux_loss(seg, batch["label"], self.aux_weight).total
        total = torch.stack(list(parts.values())).sum()
        return LossTerms(total, {k: v.detach() for k, v in parts.items()})

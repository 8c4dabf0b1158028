"""SeAFusion's losses: the original content loss and the application-guided loss of seed 000.

* ``variant="original"`` (Tang et al. 2022, authors' ``loss.py``): ``L_int + 10 L_text``;
* ``variant="agf"`` (seed 000 eq. 3 as written, α = β = 10, γ = 0.01, section 4):
  ``L_int + 10 L_text + 10 L_color + 0.01 L_wcorr``;
* ``variant="agf_active"``: eq. 3 with both new terms acting: ``L_color`` reads the fused image through the
  ratio recombination (``ratio_color_loss``) and γ = 1 (0.2 leaves the correlation term 3 % of the
  parameter gradient once the Sobel branches are trainable, as in the released network).

Why a third variant: seed 000 fuses the luminance only and recombines it with the visible Cb/Cr (section 4),
yet eq. 6 compares the fused Cb/Cr with those of the gamma-corrected visible image. With the additive
recombination the fused chroma *is* the visible chroma wherever no RGB channel clips, so ``agf``'s colour term
is a constant (0.0504 on the mean-rule and 0.0502 on the max-rule fusion of two synthetic scenes) with no
gradient, and the correlation term at γ = 0.01 carries about 1 % of the gradient: ``agf`` trains almost
exactly like ``original``. Shares of the gradient (``taskfuse.losses.base.gradient_shares``) w.r.t. the
parameters of the narrowed network (``taskfuse.models.get("seafusion").small``), every term evaluated at the
mean-rule fusion of two synthetic 64 x 80 scenes (``tests/models/test_seafusion_loss.py``): ``agf`` int 0.31,
text 0.69, color 0.00, wcorr 0.00; ``agf_active`` int 0.17, text 0.38, color 0.31, wcorr 0.14.

With segmenter outputs the total is ``L_fusion + λ L_seg`` (seed 000 eq. 2) where ``L_seg = L_main + 0.1
L_aux`` (eq. 9) on OHEM cross-entropies (threshold 0.7, at least 1/16 of the pixels, authors' ``train.py``).
The segmenter reads the fused luminance recombined with the visible chroma (``taskfuse.data.color.recombine``).
λ follows the joint adaptive training schedule: the authors' ``train.py`` sets it to the round index
(0, 1, 2, 3 over four rounds), so the training strategy overwrites ``seg_weight`` each round; the default 1.0 is
the first round that uses the semantic loss.
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor

from taskfuse.data.color import luminance, rgb_to_ycbcr
from taskfuse.errors import TaskfuseError
from taskfuse.losses.base import LossTerms
from taskfuse.losses.fusion_terms import (
    color_consistency_loss,
    edge_weighted_correlation_loss,
    gamma_correct,
    intensity_max_loss,
    texture_max_loss,
)
from taskfuse.models.base import FusionOutput
from taskfuse.tasks.segmentation.base import SegmentationOutput
from taskfuse.tasks.segmentation.loss import main_aux_loss

VARIANT_WEIGHTS: dict[str, tuple[float, float, float]] = {
    "original": (10.0, 0.0, 0.0),
    "agf": (10.0, 10.0, 0.01),
    "agf_active": (10.0, 10.0, 1.0),
}
"""(α, β, γ) of each variant: texture, colour and edge-weighted correlation weights."""
VARIANTS = tuple(VARIANT_WEIGHTS)


def ratio_color_loss(fused_y: Tensor, vi_rgb: Tensor, gamma: float = 0.1, eps: float = 1 / 255) -> Tensor:
    """Seed 000 eq. 6 on the fused image recombined by luminance ratio: ``mean|Cb_f - Cb_ṽi| + mean|Cr_f -
    Cr_ṽi|`` with ``RGB_f = clip(RGB_vi · Y_f / max(Y_vi, eps))``.

    The ratio recombination keeps the visible hue and scales its chroma with the luminance gain,
    ``Cb_f - 0.5 = (Y_f / Y_vi) (Cb_vi - 0.5)`` before clipping, so the term reaches a network that fuses only
    Y: it pulls the fused luminance of coloured pixels towards the gain at which the visible chroma matches that
    of the gamma-corrected visible image ṽi (``gamma_correct``; gamma 0.1 in seed 000 brightens and desaturates,
    so the term resists brightening strongly coloured pixels). ``|Cb_vi - 0.5| / Y_vi`` is at most
    ``1 / (1.772 · 0.114)``, so the gradient stays bounded in dark regions. The written fused image keeps the
    additive recombination of the rest of taskfuse (``taskfuse.data.color.recombine``). A gray visible image has
    no chroma and gives 0.
    """
    if vi_rgb.shape[1] == 1:
        return fused_y.new_zeros(())
    fused_rgb = (vi_rgb * fused_y / luminance(vi_rgb).clamp_min(eps)).clamp(0, 1)
    fused_ycc, ref_ycc = rgb_to_ycbcr(fused_rgb), rgb_to_ycbcr(gamma_correct(vi_rgb, gamma))
    return (fused_ycc[:, 1:] - ref_ycc[:, 1:]).abs().mean(dim=(0, 2, 3)).sum()


class SeAFusionLoss:
    """Fusion loss of SeAFusion (``variant="original"``) or of seed 000 (``"agf"``, ``"agf_active"``), plus
    ``λ L_seg``.

    Call as ``loss(out, batch)`` for the fusion loss alone or ``loss(out, batch, seg)`` with the segmenter's
    output on the recombined fused image; ``batch["label"]`` is then required. ``parts`` holds the weighted
    terms (``int``, ``text``, and for the seed-000 variants ``color`` and ``wcorr``; ``seg`` with segmenter
    outputs). A weight left at None takes the variant's value (``VARIANT_WEIGHTS``).
    """

    def __init__(
        self,
        variant: str = "agf",
        text_weight: float | None = None,
        color_weight: float | None = None,
        wcorr_weight: float | None = None,
        gamma: float = 0.1,
        seg_weight: float = 1.0,
        aux_weight: float = 0.1,
    ) -> None:
        if variant not in VARIANTS:
            raise TaskfuseError(f"loss.variant {variant!r} is not one of {', '.join(VARIANTS)}; fix the config")
        self.variant = variant
        given = (text_weight, color_weight, wcorr_weight)
        self.text_weight, self.color_weight, self.wcorr_weight = (
            d if w is None else w for w, d in zip(given, VARIANT_WEIGHTS[variant], strict=True)
        )
        self.gamma = gamma
        self.seg_weight, self.aux_weight = seg_weight, aux_weight

    def terms(
        self, out: FusionOutput, batch: Mapping[str, Tensor], seg: SegmentationOutput | None = None
    ) -> dict[str, Tensor]:
        """The weighted terms, attached to the graph (``taskfuse.losses.base.gradient_shares`` reads them)."""
        fused, ir, vi_rgb = out.fused, batch["ir"], batch["vi"]
        vi = luminance(vi_rgb)
        parts = {
            "int": intensity_max_loss(fused, ir, vi),
            "text": self.text_weight * texture_max_loss(fused, ir, vi),
        }
        if self.variant != "original":
            color = ratio_color_loss if self.variant == "agf_active" else color_consistency_loss
            parts["color"] = self.color_weight * color(fused, vi_rgb, self.gamma)
            parts["wcorr"] = self.wcorr_weight * edge_weighted_correlation_loss(fused, ir, vi)
        if seg is not None:
            if "label" not in batch:
                raise TaskfuseError("the semantic loss needs batch['label']; train on a labelled dataset")
            parts["seg"] = self.seg_weight * main_aux_loss(seg, batch["label"], self.aux_weight).total
        return parts

    def __call__(
        self, out: FusionOutput, batch: Mapping[str, Tensor], seg: SegmentationOutput | None = None
    ) -> LossTerms:
        return LossTerms.of(self.terms(out, batch, seg))

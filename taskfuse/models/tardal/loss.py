"""TarDAL's content loss, for training the generator on unlabelled pairs (``strategy: fusion_only``).

TarDAL (Liu et al., CVPR 2022) trains its generator with a content loss that keeps the structure and the
intensities of both sources, each pixel weighted by how salient it is in each source, plus two adversarial
terms (target and detail discriminators) and, in its cooperative variants, a detector's loss. This is the
content loss alone, as the authors' training code computes it (``pipeline/train.py`` of the first release,
the one that produced ``tardal.pt``)::

    L = mean( w_ir * (SSIM_ir + p |u - x|) + w_vi * (SSIM_vi + p |u - y|) ),   SSIM_s = (1 - SSIM(u, s)) / 2

with ``u`` the generator's output, ``x`` the IR image, ``y`` the visible luminance, ``p = 20`` (the pixel term's
weight; the SSIM term's is 1) and the saliency degree weights ``w_ir = 0.5 + 0.5 (S_ir - S_vi)``,
``w_vi = 1 - w_ir``. ``S`` is each source's visual saliency map (``visual_saliency``), which the authors
precompute per image and this module computes from the batch. The SSIM map is that of Wang et al. 2004 on 11 x 11
Gaussian windows (``taskfuse.losses.fusion_terms.ssim_map``), so the SSIM term covers the valid windows and
uses the weights at their centres. The adversarial terms (weight 0.1 in the authors' code) need the
discriminators and are not part of this loss.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from taskfuse.data.color import luminance
from taskfuse.losses.base import LossTerms
from taskfuse.losses.fusion_terms import ssim_map
from taskfuse.models.base import FusionOutput

LEVELS = 256


def visual_saliency(x: Tensor) -> Tensor:
    """Histogram-contrast saliency of (B, 1, H, W) images in [0, 1], normalised to [0, 1] per image.

    The visual saliency map of Ma et al. (Infrared Phys. Technol. 82, 2017) that TarDAL weights its content
    loss with: a pixel of gray level ``k`` (of 256) is as salient as it differs from all pixels of the image,
    ``S(k) = sum_j h(j) |k - j|`` with ``h`` the image's histogram; ``S`` is then stretched to [0, 1] (a
    constant image gives 0). No gradient flows through it.
    """
    levels = (x.detach().clamp(0, 1) * (LEVELS - 1)).round().long().flatten(1)
    hist = torch.zeros(levels.shape[0], LEVELS, dtype=x.dtype, device=x.device)
    hist.scatter_add_(1, levels, torch.ones_like(levels, dtype=x.dtype))
    k = torch.arange(LEVELS, dtype=x.dtype, device=x.device)
    contrast = hist @ (k[:, None] - k[None]).abs()
    s = contrast.gather(1, levels)
    lo, hi = s.amin(1, keepdim=True), s.amax(1, keepdim=True)
    return ((s - lo) / (hi - lo).clamp_min(1e-12)).view_as(x)


class TarDALLoss:
    """TarDAL's saliency-weighted SSIM + L1 content loss (see the module docstring).

    Call as ``loss(out, batch)``; ``batch`` holds ``ir`` (B, 1, H, W) and ``vi`` (RGB or luminance), crops of
    at least ``window`` pixels. ``parts`` holds the weighted ``ssim`` and ``pixel`` terms.
    """

    def __init__(
        self, ssim_weight: float = 1.0, pixel_weight: float = 20.0, window: int = 11, sigma: float = 1.5
    ) -> None:
        self.ssim_weight, self.pixel_weight = ssim_weight, pixel_weight
        self.window, self.sigma = window, sigma

    def __call__(self, out: FusionOutput, batch: Mapping[str, Tensor]) -> LossTerms:
        fused, ir, vi = out.fused, batch["ir"], luminance(batch["vi"])
        w_ir = 0.5 + 0.5 * (visual_saliency(ir) - visual_saliency(vi))
        w_vi = 1 - w_ir
        c = self.window // 2
        centre = (..., slice(c, w_ir.shape[-2] - c), slice(c, w_ir.shape[-1] - c))
        ssim_ir = (1 - ssim_map(fused, ir, self.window, self.sigma)) / 2
        ssim_vi = (1 - ssim_map(fused, vi, self.window, self.sigma)) / 2
        parts = {
            "ssim": self.ssim_weight * (w_ir[centre] * ssim_ir + w_vi[centre] * ssim_vi).mean(),
            "pixel": self.pixel_weight * (w_ir * (fused - ir).abs() + w_vi * (fused - vi).abs()).mean(),
        }
        total = torch.stack(list(parts.values())).sum()
        return LossTerms(total, {k: v.detach() for k, v in parts.items()})

"""Unsupervised fusion loss terms shared by the methods, as plain functions on (B, 1, H, W) luminance in [0, 1].

Every term returns a scalar averaged over the batch; ``||.||_1 / HW`` in the papers is a per-pixel mean.
Gradients ``∇`` are Sobel magnitudes ``|Gx| + |Gy|`` (``taskfuse.nn.sobel_abs``), as in the
SeAFusion and PSFusion code. Sources: seed 000 (Bastidas-Guacho et al. 2025, eqs. 4-8, building on
SeAFusion), seed 001 (PSFusion, Tang et al. 2023, eqs. 16-21).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from taskfuse.data.color import recombine, rgb_to_ycbcr
from taskfuse.metrics.functional import vifp_levels
from taskfuse.nn.sobel import sobel_abs, sobel_xy


def intensity_max_loss(fused: Tensor, ir: Tensor, vi: Tensor) -> Tensor:
    """``mean |I_f - max(I_ir, I_vi)|`` (seed 000 eq. 4; SeAFusion's intensity loss)."""
    return (fused - torch.maximum(ir, vi)).abs().mean()


def texture_max_loss(fused: Tensor, ir: Tensor, vi: Tensor) -> Tensor:
    """``mean | |∇I_f| - max(|∇I_ir|, |∇I_vi|) |`` (seed 000 eq. 5, seed 001 eq. 18)."""
    return (sobel_abs(fused) - torch.maximum(sobel_abs(ir), sobel_abs(vi))).abs().mean()


def gradient_selection_loss(fused: Tensor, ir: Tensor, vi: Tensor) -> Tensor:
    """``mean |∇_x I_f - ∇_x I_s| + mean |∇_y I_f - ∇_y I_s|`` with ``s`` the source of larger ``|∇|`` per pixel.

    The signed-gradient form of the texture loss (seed 000 eq. 5 compares magnitudes only, which an edge of
    the wrong polarity or a ringing artefact also satisfies): the fused gradient must equal, component and sign,
    the gradient of whichever source has the stronger edge there, the choice rule of gradient-domain fusion.
    """
    fx, fy = sobel_xy(fused)
    ix, iy = sobel_xy(ir)
    vx, vy = sobel_xy(vi)
    pick_ir = ix.abs() + iy.abs() >= vx.abs() + vy.abs()
    return (fx - torch.where(pick_ir, ix, vx)).abs().mean() + (fy - torch.where(pick_ir, iy, vy)).abs().mean()


def ssim_map(a: Tensor, b: Tensor, window: int = 11, sigma: float = 1.5) -> Tensor:
    """SSIM of Wang et al. 2004 (eq. 13: Gaussian window 11 x 11, sigma 1.5, C1 = 0.01^2, C2 = 0.03^2 for images
    in [0, 1]) of every valid window of (B, 1, H, W) images: (B, 1, H - window + 1, W - window + 1)."""
    k = _gaussian_window(window, sigma, a.dtype, a.device)
    c1, c2 = 0.01**2, 0.03**2
    mu_a, mu_b = F.conv2d(a, k), F.conv2d(b, k)
    var_a = F.conv2d(a * a, k) - mu_a**2
    var_b = F.conv2d(b * b, k) - mu_b**2
    cov = F.conv2d(a * b, k) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    return num / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))


def ssim_loss(fused: Tensor, ir: Tensor, vi: Tensor, window: int = 11, sigma: float = 1.5) -> Tensor:
    """``1 - (SSIM(I_f, I_ir) + SSIM(I_f, I_vi)) / 2`` with ``ssim_map`` averaged over valid windows."""
    return 1 - (ssim_map(fused, ir, window, sigma).mean() + ssim_map(fused, vi, window, sigma).mean()) / 2


def difference_correlation_loss(fused: Tensor, ir: Tensor, vi: Tensor) -> Tensor:
    """``1 - SCD / 2`` with ``SCD = corr(I_f - I_vi, I_ir) + corr(I_f - I_ir, I_vi)`` per image (Aslantas and
    Bendes 2015, the SCD metric): what the fused image adds to one source must be the other source, so both
    sources' contrast is kept in full rather than averaged away. Averaged over the batch; 0 when F = IR + VI
    up to an offset.
    """
    return 1 - (pearson(fused - vi, ir) + pearson(fused - ir, vi)).mean() / 2


def vif_loss(fused: Tensor, ir: Tensor, vi: Tensor) -> Tensor:
    """``1 - (VIF(I_ir, I_f) + VIF(I_vi, I_f)) / 2`` with Sheikh and Bovik's 4-scale pixel-domain VIF
    (``metrics.functional.vifp_levels``, on gray levels 0..255, sigma_n^2 = 2), in float64.

    VIF counts the information of each source that survives in the fused image, scale by scale; a local gain
    above 1 counts as more than preserved, so the term favours keeping each source's local contrast where it
    carries the signal over averaging the two. Crops must be at least 41x41.
    """
    levels = [255 * x[:, 0].double() for x in (ir, vi, fused)]
    return (1 - vifp_levels(*levels).mean(1)).mean().to(fused.dtype)


def entropy_loss(fused: Tensor, bins: int = 64) -> Tensor:
    """``1 - EN / log2(bins)`` with EN the entropy of each image's gray histogram (the EN metric, Roberts et
    al. 2008), made differentiable by splitting every pixel linearly between its two nearest bins.

    A low entropy means few gray levels carry the image (a washed-out or crushed range); the term spreads the
    fused histogram. Averaged over the batch.
    """
    x = fused.clamp(0, 1).flatten(1) * (bins - 1)
    lower = x.detach().floor().clamp(max=bins - 2)
    upper_share = x - lower
    index = lower.long()
    hist = torch.zeros(x.shape[0], bins, dtype=x.dtype, device=x.device)
    hist = hist.scatter_add(1, index, 1 - upper_share).scatter_add(1, index + 1, upper_share)
    p = hist / x.shape[1]
    entropy = -(p * torch.log2(p.clamp_min(1e-12))).sum(1)
    return 1 - entropy.mean() / math.log2(bins)


def gamma_correct(rgb: Tensor, gamma: float) -> Tensor:
    """``rgb ** gamma`` on [0, 1] (gamma < 1 brightens)."""
    return rgb.clamp(0, 1) ** gamma


def color_consistency_loss(fused_y: Tensor, vi_rgb: Tensor, gamma: float = 0.1) -> Tensor:
    """Colour term of seed 000 (eq. 6, after MRFS): ``mean|Cb_f - Cb_ṽi| + mean|Cr_f - Cr_ṽi|``.

    ``ṽi`` is the visible image after gamma correction (gamma 0.1 in seed 000, section 4; MRFS uses 0.5).
    The fused image is what the pipeline shows and segments: the fused luminance recombined with the visible
    Cb/Cr and clipped to [0, 1] (``taskfuse.data.color.recombine``), and Cb_f, Cr_f are read back from it.
    Where no RGB channel clips they equal the visible chroma, so the term is a constant (the gap between the
    visible and the gamma-corrected chroma) without gradient. Only where the fused luminance drives a channel
    out of range does clipping move the chroma, and there the gradient reaches the luminance, pulling the
    clipped chroma towards that of ṽi. Since gamma < 1 desaturates ṽi, this can favour clipping in saturated
    regions; eq. 6 was written for networks that output colour (MRFS), and with a network that fuses only Y
    (seed 000's setting) this is all it can do. The paper writes ``||.||_1`` without ``1/HW`` here; the
    per-pixel mean keeps the weight 10 comparable with eqs. 4-5. A gray (1-channel) visible image has no
    chroma to keep, and the term is 0.
    """
    if vi_rgb.shape[1] == 1:
        return fused_y.new_zeros(())
    fused_ycc = rgb_to_ycbcr(recombine(fused_y, vi_rgb))
    ref_ycc = rgb_to_ycbcr(gamma_correct(vi_rgb, gamma))
    return (fused_ycc[:, 1:] - ref_ycc[:, 1:]).abs().mean(dim=(0, 2, 3)).sum()


def pearson(a: Tensor, b: Tensor, weight: Tensor | None = None, eps: float = 1e-8) -> Tensor:
    """Per-image (weighted) Pearson correlation of (B, C, H, W) tensors -> (B,).

    With ``weight`` the means, covariance and variances are all ``weight``-weighted, the standard weighted
    correlation coefficient; a constant weight gives the plain coefficient.
    """
    if weight is None:
        weight = torch.ones_like(a)
    w = weight.flatten(1)
    w = w / w.sum(1, keepdim=True).clamp_min(eps)
    a, b = a.flatten(1), b.flatten(1)
    da = a - (w * a).sum(1, keepdim=True)
    db = b - (w * b).sum(1, keepdim=True)
    cov = (w * da * db).sum(1)
    return cov / ((w * da * da).sum(1) * (w * db * db).sum(1)).clamp_min(eps).sqrt()


def _inverse(total: Tensor, floor: float) -> Tensor:
    """``1 / total``, averaged over the batch, with ``total`` clamped below at ``floor``.

    ``1/x`` also falls as x approaches 0 from below, so an unclamped ratio would reward driving a negative
    correlation towards zero; below ``floor`` the term is constant and other terms raise the correlation.
    """
    return (1.0 / total.clamp_min(floor)).mean()


def edge_weighted_correlation_loss(fused: Tensor, ir: Tensor, vi: Tensor, floor: float = 1e-2) -> Tensor:
    """Seed 000 eqs. 7-8: ``1 / (WCorr(I_f, I_ir; S_ir) + WCorr(I_f, I_vi; S_vi))``.

    ``S_x = |∇I_x|`` (Sobel) weights each pixel of the correlation, so edges count most. Eq. 8's means
    ``Ī`` are taken with the same weights (the weighted Pearson coefficient; the paper's bars leave it open).
    """
    total = pearson(fused, ir, sobel_abs(ir)) + pearson(fused, vi, sobel_abs(vi))
    return _inverse(total, floor)


def correlation_loss(fused: Tensor, ir: Tensor, vi: Tensor, floor: float = 1e-2) -> Tensor:
    """Seed 001 eq. 19: ``1 / (corr(I_f, I_ir) + corr(I_f, I_vi))`` with per-image Pearson correlation."""
    return _inverse(pearson(fused, ir) + pearson(fused, vi), floor)


def _gaussian_window(size: int, sigma: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    x = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).view(1, 1, size, size)


def local_variance(x: Tensor, window: int = 9, sigma: float = 1.5) -> Tensor:
    """Gaussian-weighted local variance ``E[x^2] - E[x]^2`` per pixel of (B, 1, H, W), replicated borders.

    Window 9 x 9, sigma 1.5 as in the ``std`` helper of the PSFusion code (the paper leaves them open).
    """
    k = _gaussian_window(window, sigma, x.dtype, x.device)
    p = window // 2
    xp = F.pad(x, (p, p, p, p), mode="replicate")
    mu = F.conv2d(xp, k)
    return (F.conv2d(xp * xp, k) - mu * mu).clamp_min(0)


def contrast_masks(ir: Tensor, vi: Tensor, window: int = 9, sigma: float = 1.5) -> tuple[Tensor, Tensor]:
    """Seed 001 eq. 16: ``M_ir = [σ²(ir) > σ²(vi)]``, ``M_vi = [σ²(vi) > σ²(ir)]`` (both 0 on ties)."""
    var_ir, var_vi = local_variance(ir, window, sigma), local_variance(vi, window, sigma)
    return (var_ir > var_vi).to(ir.dtype), (var_vi > var_ir).to(ir.dtype)


def mask_intensity_loss(fused: Tensor, ir: Tensor, vi: Tensor, m_ir: Tensor, m_vi: Tensor, m_tar: Tensor) -> Tensor:
    """Seed 001 eq. 17: ``mean|δ(M_ir + M_tar) (I_f - I_ir)| + mean|δ(M_vi + 1 - M_tar) (I_f - I_vi)|``.

    ``δ`` is the sigmoid that maps the summed masks (0, 1 or 2) into (0, 1): 0.5, 0.73 or 0.88.
    ``m_tar`` is the salient-target mask (1 on target pixels).
    """
    w_ir = torch.sigmoid(m_ir + m_tar)
    w_vi = torch.sigmoid(m_vi + 1 - m_tar)
    return (w_ir * (fused - ir)).abs().mean() + (w_vi * (fused - vi)).abs().mean()


def scene_fidelity_loss(rec: Tensor, src: Tensor) -> Tensor:
    """Seed 001 eq. 21: ``mean|I_x - Î_x| + mean| |∇I_x| - |∇Î_x| |`` for one reconstructed source."""
    return (src - rec).abs().mean() + (sobel_abs(src) - sobel_abs(rec)).abs().mean()


def variance_selected_error(fused: Tensor, ir: Tensor, vi: Tensor) -> Tensor:
    """FGFusion (seed 003) eq. 10 per pixel: ``(I_f - I_s)^2`` with ``I_s`` the source of larger variance.

    The choice is made per image from the global variances ``σ(I_ir)``, ``σ(I_vi)`` (the paper compares the
    two images, not windows). Returns the (B, 1, H, W) map, so a loss can weight pixels before averaging.
    """
    pick_ir = (ir.flatten(1).var(1) > vi.flatten(1).var(1)).view(-1, 1, 1, 1)
    return (fused - torch.where(pick_ir, ir, vi)) ** 2


def minmax_local_variance(x: Tensor, window: int = 3) -> Tensor:
    """DSIFuse (seed 004) contrast mask ``Norm(Var_kxk(X))``: the variance of every k x k box (replicated
    borders), min-max normalised to [0, 1] per image (an image of constant variance gives 0)."""
    p = window // 2
    xp = F.pad(x, (p, p, p, p), mode="replicate")
    mu = F.avg_pool2d(xp, window, 1)
    var = (F.avg_pool2d(xp * xp, window, 1) - mu * mu).clamp_min(0)
    lo = var.amin((1, 2, 3), keepdim=True)
    hi = var.amax((1, 2, 3), keepdim=True)
    return (var - lo) / (hi - lo).clamp_min(1e-12)

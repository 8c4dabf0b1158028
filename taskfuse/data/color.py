"""Colour handling shared by every method: fuse luminance, keep the visible chroma.

Standard: ITU-R BT.601 luma coefficients in the full-range (JFIF / JPEG) YCbCr form, on values in [0, 1]::

    Y  =  0.299 R + 0.587 G + 0.114 B
    Cb = (B - Y) / 1.772 + 0.5        (1.772 = 2 (1 - 0.114))
    Cr = (R - Y) / 1.402 + 0.5        (1.402 = 2 (1 - 0.299))

This is the conversion of OpenCV's ``COLOR_RGB2YCrCb`` on float images and, to three decimals, of the
``RGB2YCrCb`` helpers in the SeAFusion and PSFusion code (Cb scale 0.564, Cr scale 0.713). The inverse is
exact, so RGB -> YCbCr -> RGB is the identity up to float rounding; after 8-bit quantisation of the RGB
result the round trip is within 1/255 (tested).

Fusion networks in the seeds fuse Y of the visible image with the infrared image, then recombine the fused
Y with the visible Cb/Cr (``recombine``). A gray visible image gives a gray result.
"""

from __future__ import annotations

import torch
from torch import Tensor

KR, KG, KB = 0.299, 0.587, 0.114
CB_SCALE = 2.0 * (1.0 - KB)
CR_SCALE = 2.0 * (1.0 - KR)


def _check_rgb(x: Tensor) -> None:
    if x.dim() < 3 or x.shape[-3] != 3:
        raise ValueError(f"expected an RGB tensor shaped (..., 3, H, W), got {tuple(x.shape)}")


def rgb_to_ycbcr(rgb: Tensor) -> Tensor:
    """(..., 3, H, W) RGB in [0, 1] -> (..., 3, H, W) stacked Y, Cb, Cr in [0, 1] (BT.601 full range)."""
    _check_rgb(rgb)
    r, g, b = rgb.unbind(-3)
    y = KR * r + KG * g + KB * b
    cb = (b - y) / CB_SCALE + 0.5
    cr = (r - y) / CR_SCALE + 0.5
    return torch.stack((y, cb, cr), dim=-3)


def ycbcr_to_rgb(ycbcr: Tensor) -> Tensor:
    """Exact inverse of ``rgb_to_ycbcr``; the result is not clamped (the caller decides)."""
    _check_rgb(ycbcr)
    y, cb, cr = ycbcr.unbind(-3)
    r = y + CR_SCALE * (cr - 0.5)
    b = y + CB_SCALE * (cb - 0.5)
    g = (y - KR * r - KB * b) / KG
    return torch.stack((r, g, b), dim=-3)


def luminance(vi: Tensor) -> Tensor:
    """Y of a visible image: (..., 3, H, W) RGB -> (..., 1, H, W); a 1-channel image is returned as is."""
    if vi.shape[-3] == 1:
        return vi
    _check_rgb(vi)
    r, g, b = vi.unbind(-3)
    return (KR * r + KG * g + KB * b).unsqueeze(-3)


def recombine(fused_y: Tensor, vi: Tensor) -> Tensor:
    """Put a fused luminance (..., 1, H, W) back with the chroma of ``vi``.

    ``vi`` with 3 channels gives an RGB result clamped to [0, 1]; a 1-channel (gray) ``vi`` gives the fused
    luminance itself, clamped. The YCbCr -> RGB map is linear and gives every RGB channel a weight of one on Y,
    so replacing Y while keeping Cb/Cr adds ``fused_y - Y(vi)`` to each channel of ``vi``: one pass, no
    round trip through YCbCr.
    """
    if fused_y.shape[-3] != 1:
        raise ValueError(f"fused luminance must have one channel, got {tuple(fused_y.shape)}")
    if vi.shape[-3] == 1:
        return fused_y.clamp(0, 1)
    return (vi + (fused_y - luminance(vi))).clamp(0, 1)

"""Resizing and stride padding shared by the fusion networks and the segmenters."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor


def resize(x: Tensor, size: tuple[int, int] | list[int], align_corners: bool = False) -> Tensor:
    """Bilinear resize of (B, C, h, w) to ``size``; a no-op when the size already matches.

    On CUDA, where a gradient is wanted, the backward pass runs as two matrix products (``BilinearResize``)
    instead of torch's own, which scatters every output pixel's gradient into the input by atomic additions:
    upsampling segmenter logits s times to the input size (BiSeNet: 8 and 16; SeAFusion's fusion phase) lands
    about (2 s)^2 additions on every input pixel, 256 and 1024 there."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    if x.is_cuda and x.requires_grad and torch.is_grad_enabled():
        return BilinearResize.apply(x, tuple(size), align_corners)
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=align_corners)


def interpolation_matrix(
    size_in: int, size_out: int, align_corners: bool, device: torch.device, dtype: torch.dtype = torch.float32
) -> Tensor:
    """(size_out, size_in) weights of 1-D linear interpolation, as ``F.interpolate(mode="bilinear")``
    computes them along each axis (``area_pixel_compute_source_index``): source position ``i (in - 1) / (out -
    1)`` with ``align_corners``, else ``(i + 1/2) in / out - 1/2`` clamped at 0; two taps at its floor and the
    next sample (the last sample alone at the edge). Bilinear resizing is the product of one such matrix per axis.

    >>> interpolation_matrix(2, 4, False, torch.device("cpu")).tolist()
    [[1.0, 0.0], [0.75, 0.25], [0.25, 0.75], [0.0, 1.0]]
    """
    out = torch.arange(size_out, device=device, dtype=dtype)
    if align_corners:
        src = out * ((size_in - 1) / (size_out - 1) if size_out > 1 else 0.0)
    else:
        src = ((out + 0.5) * (size_in / size_out) - 0.5).clamp_min(0)
    low = src.floor().clamp_max(size_in - 1)
    high = (low + 1).clamp_max(size_in - 1)
    frac = src - low
    taps = torch.arange(size_in, device=device, dtype=dtype)
    return (taps == low[:, None]) * (1 - frac)[:, None] + (taps == high[:, None]) * frac[:, None]


class BilinearResize(torch.autograd.Function):
    """``F.interpolate(x, size, mode="bilinear")`` with the gradient ``A_h^T g A_w`` (``interpolation_matrix``
    per axis) computed by two matrix products in float32 (float64 for float64 input): the same sums as torch's
    backward in another order, made without atomic additions, so also deterministic."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, size: tuple[int, int], align_corners: bool) -> Tensor:
        ctx.in_size, ctx.align_corners, ctx.dtype = tuple(x.shape[-2:]), align_corners, x.dtype
        return F.interpolate(x, size=size, mode="bilinear", align_corners=align_corners)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:
        (h, w), (big_h, big_w) = ctx.in_size, grad.shape[-2:]
        dtype = torch.promote_types(grad.dtype, torch.float32)
        rows = interpolation_matrix(h, big_h, ctx.align_corners, grad.device, dtype)
        cols = interpolation_matrix(w, big_w, ctx.align_corners, grad.device, dtype)
        g = grad.to(dtype)
        if big_h * big_w * w + h * big_h * w <= h * big_h * big_w + h * big_w * w:
            g = rows.T @ (g @ cols)
        else:
            g = (rows.T @ g) @ cols
        return g.to(ctx.dtype), None, None


def replicate_pad(x: Tensor, pad: tuple[int, int, int, int]) -> Tensor:
    """``F.pad(x, pad, mode="replicate")`` for (..., H, W) and ``pad`` = (left, right, top, bottom), built from
    the edge rows and columns: the same values, and a backward pass ``torch.compile`` can build (torch 2.13's
    compiled ``replication_pad2d_backward`` fails its own stride check on the CPU, so a compiled training step of
    a network with replicate padding stopped there).

    The slices serve while ``torch.compile`` traces and for inputs ``F.pad`` does not take (fewer than 3
    dimensions); otherwise ``F.pad`` itself runs, whose backward sums the edge gradients in another order (up to
    a float rounding apart): eager training then reproduces, bit for bit, networks trained before the slices.

    >>> replicate_pad(torch.tensor([[1.0, 2.0]]), (1, 2, 1, 0)).tolist()
    [[1.0, 1.0, 2.0, 2.0, 2.0], [1.0, 1.0, 2.0, 2.0, 2.0]]
    """
    if x.dim() in (3, 4) and not torch.compiler.is_compiling():
        return F.pad(x, pad, mode="replicate")
    left, right, top, bottom = pad
    rows, cols = x.shape[:-1], x.shape[:-2]
    x = torch.cat((x[..., :1].expand(*rows, left), x, x[..., -1:].expand(*rows, right)), dim=-1)
    width = x.shape[-1]
    return torch.cat((x[..., :1, :].expand(*cols, top, width), x, x[..., -1:, :].expand(*cols, bottom, width)), dim=-2)


def pad_to_multiple(x: Tensor, stride: int) -> Tensor:
    """Pad the bottom and right of (..., H, W) up to multiples of ``stride``: reflection where the image is large
    enough, edge replication otherwise. Callers crop outputs back to the original H, W."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % stride, (-w) % stride
    if not (ph or pw):
        return x
    return F.pad(x, (0, pw, 0, ph), mode="reflect") if ph < h and pw < w else replicate_pad(x, (0, pw, 0, ph))

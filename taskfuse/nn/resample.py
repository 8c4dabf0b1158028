"""Resizing and stride padding shared by the fusion networks and the segmenters."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def resize(x: Tensor, size: tuple[int, int] | list[int], align_corners: bool = False) -> Tensor:
    """Bilinear resize of (B, C, h, w) to ``size``; a no-op when the size already matches."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=align_corners)


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

"""Resizing and stride padding shared by the fusion networks and the segmenters."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def resize(x: Tensor, size: tuple[int, int] | list[int], align_corners: bool = False) -> Tensor:
    """Bilinear resize of (B, C, h, w) to ``size``; a no-op when the size already matches."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=align_corners)


def pad_to_multiple(x: Tensor, stride: int) -> Tensor:
    """Pad the bottom and right of (..., H, W) up to multiples of ``stride``: reflection where the image is large
    enough, edge replication otherwise. Callers crop outputs back to the original H, W."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % stride, (-w) % stride
    if not (ph or pw):
        return x
    return F.pad(x, (0, pw, 0, ph), mode="reflect" if ph < h and pw < w else "replicate")

"""Sobel gradients, used by the texture losses and by SeAFusion's gradient residual dense block."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

_KX = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])


def sobel_xy(x: Tensor) -> tuple[Tensor, Tensor]:
    """Horizontal and vertical Sobel responses of every channel of (B, C, H, W), zero padding, same size."""
    c = x.shape[1]
    kx = _KX.to(dtype=x.dtype, device=x.device).expand(c, 1, 3, 3)
    ky = _KX.t().to(dtype=x.dtype, device=x.device).expand(c, 1, 3, 3)
    return F.conv2d(x, kx, padding=1, groups=c), F.conv2d(x, ky, padding=1, groups=c)


def sobel_abs(x: Tensor) -> Tensor:
    """|Gx| + |Gy|, the gradient magnitude used by SeAFusion's texture loss and GRDB."""
    gx, gy = sobel_xy(x)
    return gx.abs() + gy.abs()


class Sobel(nn.Module):
    """Module form of ``sobel_abs`` (no parameters)."""

    def forward(self, x: Tensor) -> Tensor:
        return sobel_abs(x)

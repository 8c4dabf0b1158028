"""Sobel gradients: fixed (the texture losses, the lite network) and learned (SeAFusion's gradient residual dense
block)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

_KX = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
_KERNELS: dict[tuple[torch.device, torch.dtype], tuple[Tensor, Tensor]] = {}


def _kernels(device: torch.device, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """The (1, 1, 3, 3) Sobel pair on ``device`` in ``dtype``, copied there once and reused: a copy per call
    would be a blocking host-to-device transfer in every forward pass on a GPU. They are made outside
    inference mode, so that a pair first made while fusing still serves training (autograd may save them).
    While ``torch.compile`` or ``torch.export`` traces, the pair is made afresh and not kept: a traced tensor
    (a fake one, without data) kept here would stand in for the kernels in every later call."""
    if torch.compiler.is_compiling():
        return _pair(device, dtype)
    key = (device, dtype)
    if key not in _KERNELS:
        with torch.inference_mode(False):
            _KERNELS[key] = _pair(device, dtype)
    return _KERNELS[key]


def _pair(device: torch.device, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """The pair made on ``device`` itself (smoothing [1, 2, 1] times difference [-1, 0, 1]), not copied from
    ``_KX``: in a compiled graph a copy from a CPU tensor runs on every call, and waits for the GPU."""
    taps = torch.arange(3, device=device, dtype=dtype) - 1
    kx = ((2 - taps.abs())[:, None] * taps).view(1, 1, 3, 3)
    return kx, kx.transpose(-1, -2).contiguous()


def sobel_xy(x: Tensor) -> tuple[Tensor, Tensor]:
    """Horizontal and vertical Sobel responses of every channel of (B, C, H, W), zero padding, same size."""
    c = x.shape[1]
    kx, ky = _kernels(x.device, x.dtype)
    kx, ky = kx.expand(c, 1, 3, 3), ky.expand(c, 1, 3, 3)
    return F.conv2d(x, kx, padding=1, groups=c), F.conv2d(x, ky, padding=1, groups=c)


def sobel_abs(x: Tensor) -> Tensor:
    """|Gx| + |Gy|, the gradient magnitude used by SeAFusion's texture loss and GRDB."""
    gx, gy = sobel_xy(x)
    return gx.abs() + gy.abs()


class Sobel(nn.Module):
    """Module form of ``sobel_abs`` (no parameters)."""

    def forward(self, x: Tensor) -> Tensor:
        return sobel_abs(x)


class LearnedSobel(nn.Module):
    """``|Kx * x| + |Ky * x|`` with a trainable 3 x 3 kernel pair per channel, initialised to Sobel.

    The gradient branch of SeAFusion's GRDB (the authors' ``Sobelxy`` in ``FusionNet.py``): two depthwise 3 x 3
    convolutions without bias, zero padding, whose weights start as the Sobel kernels and are trained with the
    network. At initialisation it equals ``sobel_abs``; the released SeAFusion weights move the kernels by up
    to 0.18 from Sobel, so fixed kernels would not reproduce that network.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.gx = nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False)
        self.gy = nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False)
        with torch.no_grad():
            self.gx.weight.copy_(_KX.expand(channels, 1, 3, 3))
            self.gy.weight.copy_(_KX.t().expand(channels, 1, 3, 3))

    def forward(self, x: Tensor) -> Tensor:
        return self.gx(x).abs() + self.gy(x).abs()

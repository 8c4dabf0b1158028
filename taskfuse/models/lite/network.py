"""``lite``: the built-in default fusion network, SeAFusion's recipe made fast enough for a laptop CPU.

What it keeps from SeAFusion (seed 000's network, ``models/seafusion/network.py``): it fuses the IR image with the
visible luminance Y and takes colour back from the visible Cb/Cr; it feeds the Sobel gradient magnitude of each
source forward as GRDB's residual branch does, so edges reach the output through a short path; LeakyReLU(0.2)
convolutions. What it changes, for speed: instead of dense blocks at full resolution (51 GMACs at 640 x 480), the
sources and their gradients are folded losslessly into half-resolution channels (pixel unshuffle), a three-scale
encoder-decoder (1/2, 1/4 and 1/8 resolution, skips by addition) works there, and one convolution at full
resolution reads its upsampled features beside the sources: no deep full-resolution feature maps, which is what a
2-core CPU pays most for.

The output is a per-pixel blend of the two sources plus a bounded detail residual,
``F = w I_ir + (1 - w) Y_vi + r / 2`` with ``w = sigmoid(.)``, ``r = tanh(.)``: the network decides where each
source dominates and what detail to add, but cannot darken a region below both sources without paying for it in
the residual, and starts (zero head) from the mean of the sources. Every convolution and the input Sobel use
replicate padding, so a flat pair gives a flat output up to the border (zero padding had taught the first version
a bright line one pixel inside the top and left edges). The training recipe is ``configs/lite.yaml``; the model
card is ``taskfuse/models/lite/MODEL_CARD.md``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from taskfuse.models.base import FusionModel, FusionOutput
from taskfuse.nn.conv import ConvBNAct
from taskfuse.nn.sobel import sobel_abs


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Module:
    return ConvBNAct(cin, cout, 3, stride=stride, act="lrelu", bn=True, padding_mode="replicate")


def _edges(x: Tensor) -> Tensor:
    """Sobel magnitude with replicated borders (no artificial edge along the image border)."""
    return sobel_abs(F.pad(x, (1, 1, 1, 1), mode="replicate"))[..., 1:-1, 1:-1]


def _up(x: Tensor, like: Tensor) -> Tensor:
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


class LiteFusion(FusionModel):
    """Fusion network of luminance; ``width`` is the channel count at 1/2 resolution (2x at 1/4, 4x at 1/8)."""

    input_mode = "y"
    output_mode = "y"
    stride = 8

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        if width < 1:
            raise ValueError(f"lite: width must be a positive channel count, got {width}")
        w2, w4, w8 = width, 2 * width, 4 * width
        self.enc2 = nn.Sequential(_conv(16, w2), _conv(w2, w2))
        self.enc4 = nn.Sequential(_conv(w2, w4, 2), _conv(w4, w4))
        self.enc8 = nn.Sequential(_conv(w4, w8, 2), _conv(w8, w8), _conv(w8, w8))
        self.up8 = _conv(w8, w4)
        self.dec4 = _conv(w4, w4)
        self.up4 = _conv(w4, w2)
        self.dec2 = _conv(w2, w2)
        self.head = nn.Conv2d(w2 + 4, 2, 3, padding=1, padding_mode="replicate")
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    @property
    def context(self) -> tuple[int, int]:
        """A pixel's output depends on inputs up to 58 pixels away (measured: one changed input pixel moves the
        output from 58 pixels before it to 57 after it): 64 on the 8-pixel grid of the 1/8 scale."""
        return 64, self.stride

    def fuse(self, ir: Tensor, vi: Tensor) -> FusionOutput:
        sources = torch.cat((ir, vi, _edges(ir), _edges(vi)), dim=1)
        x2 = self.enc2(F.pixel_unshuffle(sources, 2))
        x4 = self.enc4(x2)
        x8 = self.enc8(x4)
        y4 = self.dec4(x4 + _up(self.up8(x8), x4))
        y2 = self.dec2(x2 + _up(self.up4(y4), x2))
        weight, residual = self.head(torch.cat((_up(y2, sources), sources), dim=1)).chunk(2, dim=1)
        w = torch.sigmoid(weight)
        return FusionOutput(w * ir + (1 - w) * vi + torch.tanh(residual) / 2, {"ir_weight": w})

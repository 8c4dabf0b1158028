"""``lite``: the built-in default fusion network, SeAFusion's recipe made fast enough for a laptop CPU.

What it keeps from SeAFusion (seed 000's network, ``models/seafusion/network.py``): it fuses the IR image with the
visible luminance Y and takes colour back from the visible Cb/Cr; it feeds the Sobel gradient magnitude of each
source forward as GRDB's residual branch does, so edges reach the output through a short path; LeakyReLU(0.2)
convolutions and a tanh output mapped to [0, 1]. What it changes: instead of dense blocks at full resolution
(51 GMACs at 640 x 480), the sources and their gradients are folded losslessly into half-resolution channels
(pixel unshuffle), a two-scale encoder-decoder (1/2 and 1/4 resolution, skip connection by addition) works
there, and a pixel shuffle unfolds its output back to full resolution: 0.135 M parameters and 5.05 GMACs at
640 x 480 for the default ``width = 32``, and no full-resolution feature maps, which is what a 2-core CPU pays
most for. The
training recipe is ``configs/lite.yaml``; the model card is ``taskfuse/models/lite/MODEL_CARD.md``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from taskfuse.models.base import FusionModel, FusionOutput
from taskfuse.nn.conv import ConvBNAct
from taskfuse.nn.sobel import sobel_abs


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Module:
    return ConvBNAct(cin, cout, 3, stride=stride, act="lrelu", bn=False)


class LiteFusion(FusionModel):
    """Fusion network of luminance; ``width`` is the channel count at 1/2 resolution (2x at 1/4)."""

    input_mode = "y"
    output_mode = "y"
    stride = 4

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        if width < 1:
            raise ValueError(f"lite: width must be a positive channel count, got {width}")
        w2, w4 = width, 2 * width
        self.enc2 = nn.Sequential(_conv(16, w2), _conv(w2, w2))
        self.enc4 = nn.Sequential(_conv(w2, w4, 2), _conv(w4, w4), _conv(w4, w4))
        self.up = _conv(w4, w2)
        self.head = nn.Sequential(_conv(w2, w2), ConvBNAct(w2, 4, 3, act="tanh", bn=False))

    def fuse(self, ir: Tensor, vi: Tensor) -> FusionOutput:
        x = F.pixel_unshuffle(torch.cat((ir, vi, sobel_abs(ir), sobel_abs(vi)), dim=1), 2)
        x2 = self.enc2(x)
        x4 = self.enc4(x2)
        y2 = x2 + self.up(F.interpolate(x4, size=x2.shape[-2:], mode="bilinear", align_corners=False))
        return FusionOutput(F.pixel_shuffle(self.head(y2), 2) / 2 + 0.5)

"""Dense blocks (Huang et al. 2017) and SeAFusion's gradient residual dense block.

``DenseBlock`` is the plain form: every layer sees the concatenation of the block input and of all earlier
layer outputs. SeAFusion (Tang et al. 2022, Inf. Fusion 82, Fig. 3) builds its GRDB from a two-layer dense
block; PSFusion (Tang et al. 2023, seed 001) uses dense connections in its PSFM dense layers and in the dense
scene reconstruction module (DSRM).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from taskfuse.nn.conv import ConvBNAct
from taskfuse.nn.sobel import LearnedSobel


class DenseBlock(nn.Module):
    """``layers`` k x k convolutions, each adding ``growth`` channels to the running concatenation.

    Without ``out_channels`` the block returns the concatenation ``[x, y1, ..., yn]`` with
    ``in_channels + layers * growth`` channels (``self.out_channels``). With ``out_channels`` a last
    convolution of the same kind maps that concatenation to ``out_channels`` (the DSRM form).
    """

    def __init__(
        self,
        in_channels: int,
        growth: int,
        layers: int = 2,
        k: int = 3,
        act: str | None = "lrelu",
        bn: bool = False,
        out_channels: int | None = None,
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            ConvBNAct(in_channels + i * growth, growth, k, act=act, bn=bn) for i in range(layers)
        )
        cat_channels = in_channels + layers * growth
        self.head = ConvBNAct(cat_channels, out_channels, k, act=act, bn=bn) if out_channels else None
        self.out_channels = out_channels or cat_channels

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = torch.cat((x, layer(x)), dim=1)
        return self.head(x) if self.head is not None else x


class GRDB(nn.Module):
    """Gradient residual dense block of SeAFusion (Tang et al. 2022, Fig. 3).

    Main stream: a two-layer dense block of 3 x 3 conv + LeakyReLU(0.2) with growth ``in_channels`` (so the
    concatenation has ``3 * in_channels`` channels), then a 1 x 1 conv to ``out_channels``. Residual stream:
    the gradient magnitude ``|Gx| + |Gy|`` of every input channel, then a 1 x 1 conv to ``out_channels``.
    The two are added and passed through LeakyReLU(0.1). Kernel sizes and slopes follow the authors'
    ``FusionNet.py``, where the gradient kernels are a trainable per-channel pair initialised to Sobel
    (``taskfuse.nn.sobel.LearnedSobel``), as here.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.dense = DenseBlock(in_channels, in_channels, layers=2, act="lrelu", bn=False)
        self.squeeze = nn.Conv2d(self.dense.out_channels, out_channels, 1)
        self.sobel = LearnedSobel(in_channels)
        self.grad = nn.Conv2d(in_channels, out_channels, 1)
        self.act = nn.LeakyReLU(0.1, inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.squeeze(self.dense(x)) + self.grad(self.sobel(x)))

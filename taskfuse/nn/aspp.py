"""Atrous spatial pyramid pooling (ASPP, Chen et al. DeepLabV3 2017 / DeepLabV3+ 2018).

Parallel branches look at the same map with different receptive fields and a 1 x 1 convolution merges them:
an optional 1 x 1 branch, one 3 x 3 branch per dilation rate, and an optional image-pooling branch. Settings:

* DeepLabV3+ (``taskfuse.tasks.segmentation.deeplabv3plus``): ``rates=(6, 12, 18)`` (doubled at output
  stride 8), ``conv1x1=True``, ``image_pool=True``, 256 channels; parameter names ``convs``, ``pool``,
  ``project``.
* MAFS (seed 002, eq. 8): the authors' ``Fusion_block.ASPP`` (EGFNet's global information module) uses
  ``rates=(1, 2, 3, 4)`` with a 1 x 1 branch, no pooling, and adds the input back (``residual=True``).
  Its ARM head before the segmentation head is the same block with ``rates=(1, 2, 4, 8)`` and no 1 x 1 branch.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from taskfuse.nn.conv import ConvBNAct


class ASPP(nn.Module):
    """(B, in_channels, H, W) -> (B, out_channels, H, W); every branch is conv + BN + ReLU.

    ``residual=True`` adds the input to the merged map (needs ``in_channels == out_channels``) and refines the
    sum with a 3 x 3 conv + BN + ReLU, as MAFS's variant does. ``dropout`` follows the merge (off by default).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        rates: tuple[int, ...] = (6, 12, 18),
        conv1x1: bool = True,
        image_pool: bool = True,
        residual: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if residual and in_channels != out_channels:
            raise ValueError(f"ASPP: residual needs in_channels == out_channels, got {in_channels}, {out_channels}")
        convs: list[nn.Module] = [ConvBNAct(in_channels, out_channels, 1)] if conv1x1 else []
        convs += [ConvBNAct(in_channels, out_channels, 3, dilation=r) for r in rates]
        self.convs = nn.ModuleList(convs)
        self.pool = (
            nn.Sequential(nn.AdaptiveAvgPool2d(1), ConvBNAct(in_channels, out_channels, 1)) if image_pool else None
        )
        n = len(convs) + (1 if image_pool else 0)
        if n == 0:
            raise ValueError("ASPP: give at least one rate, the 1 x 1 branch or image pooling")
        self.project = ConvBNAct(n * out_channels, out_channels, 1)
        self.dropout = nn.Dropout(dropout)
        self.refine = ConvBNAct(out_channels, out_channels, 3) if residual else None

    def forward(self, x: Tensor) -> Tensor:
        outs = [conv(x) for conv in self.convs]
        if self.pool is not None:
            outs.append(self.pool(x).expand(-1, -1, *x.shape[-2:]))
        out = self.dropout(self.project(torch.cat(outs, 1)))
        return self.refine(out + x) if self.refine is not None else out

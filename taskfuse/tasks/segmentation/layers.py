"""Layers shared by the segmentation networks.

``DropPath`` is stochastic depth (Huang et al., ECCV 2016) as SegFormer and SegNeXt use it on every residual
branch. ``ConvModule`` is convolution + optional BatchNorm/GroupNorm + optional ReLU with the attribute names of
mmcv's ``ConvModule`` (``conv``, ``bn`` or ``gn``), so checkpoints of the mmseg-based releases map onto ours by
name; like mmcv it drops the convolution bias when a norm follows.
"""

from __future__ import annotations

import math
from typing import Literal

from torch import Tensor, nn


class DropPath(nn.Module):
    """Zero a residual branch for a whole sample with probability ``p`` in training; survivors scale by 1/(1-p)."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep


class ConvModule(nn.Module):
    """k x k convolution (same padding), then ``norm`` ("bn", "gn" with 32 groups, or None), then ReLU if ``act``."""

    def __init__(
        self, cin: int, cout: int, k: int = 1, norm: Literal["bn", "gn"] | None = "bn", act: bool = True
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, padding=k // 2, bias=norm is None)
        self.norm_name = norm
        if norm == "bn":
            self.bn = nn.BatchNorm2d(cout)
        elif norm == "gn":
            self.gn = nn.GroupNorm(32, cout)
        self.act = nn.ReLU(inplace=True) if act else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(x)
        if self.norm_name is not None:
            x = getattr(self, self.norm_name)(x)
        return self.act(x)


def init_encoder_weights(module: nn.Module) -> None:
    """The initialisation of the MiT and MSCAN encoders (NVlabs/SegFormer ``_init_weights``, mmseg ``MSCAN``).

    Linear: truncated normal (std 0.02), zero bias. LayerNorm: weight 1, bias 0. Conv2d: normal with
    std sqrt(2 / fan_out), fan_out = k_h * k_w * out_channels / groups, zero bias.
    """
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
            if m.bias is not None:
                nn.init.zeros_(m.bias)

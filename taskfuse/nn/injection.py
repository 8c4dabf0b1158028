"""Semantic injection: modulate features with a per-pixel scale and shift predicted from semantic features.

PSFusion's semantic injection module (SIM, seed 001 eq. 15), after SPADE (Park et al. 2019)::

    gamma = Conv_gamma^n(up(F_sem)),  beta = Conv_beta^n(up(F_sem))
    out   = (1 + gamma) * IN(ConvBN(F)) + beta

``up`` resizes the semantic features to the size of ``F`` (bilinear), ``IN`` is instance normalisation
without parameters, ``Conv^n`` is a shared 3 x 3 conv + ReLU followed by one 3 x 3 conv per branch
(n = 2; hidden width from the authors' ``PSF.py``). Eq. 15 writes the scale as ``gamma``; it is
parameterised as ``1 + gamma``, as in SPADE and the authors' code, so an untrained module passes the
normalised features through instead of zeroing them.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from taskfuse.nn.conv import ConvBNAct


class SemanticInjection(nn.Module):
    """Inject ``cond`` (B, cond_channels, h, w) into ``x`` (B, channels, H, W); returns (B, channels, H, W).

    ``pre_conv=False`` drops the ConvBN in front of the normalisation (FiLM-style modulation of ``x`` itself).
    """

    def __init__(self, channels: int, cond_channels: int, hidden: int = 32, pre_conv: bool = True) -> None:
        super().__init__()
        self.pre = ConvBNAct(channels, channels, 3, act="relu", bn=True) if pre_conv else nn.Identity()
        self.norm = nn.InstanceNorm2d(channels, affine=False)
        self.shared = nn.Sequential(nn.Conv2d(cond_channels, hidden, 3, padding=1), nn.ReLU(inplace=True))
        self.gamma = nn.Conv2d(hidden, channels, 3, padding=1)
        self.beta = nn.Conv2d(hidden, channels, 3, padding=1)

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        if cond.shape[-2:] != x.shape[-2:]:
            cond = F.interpolate(cond, size=x.shape[-2:], mode="bilinear", align_corners=False)
        h = self.shared(cond)
        return (1 + self.gamma(h)) * self.norm(self.pre(x)) + self.beta(h)

"""Feature-wise linear modulation (FiLM, Perez et al. 2018) conditioned on a spatial map.

``out = (1 + scale) * x + shift`` with ``(scale, shift)`` predicted per pixel and channel from ``cond`` by one
convolution. DSIFuse (seed 004) uses it as its FiLM-based modality integration (FMI): eq. 8 conditions the
cross-attended feature of one modality on the other modality, eq. 9 conditions on the semantic prior S_I.
The ``1 +`` makes an untrained block pass ``x`` through (eqs. 8-9 write the scale as ``beta + 1``).
Unlike SPADE-style semantic injection (``taskfuse.nn.injection``) ``x`` is not normalised first.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class FiLM(nn.Module):
    """Modulate ``x`` (B, channels, H, W) by ``cond`` (B, cond_channels, h, w), resized to (H, W) bilinearly."""

    def __init__(self, channels: int, cond_channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.affine = nn.Conv2d(cond_channels, 2 * channels, kernel_size, padding=kernel_size // 2)

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        if cond.shape[-2:] != x.shape[-2:]:
            cond = F.interpolate(cond, size=x.shape[-2:], mode="bilinear", align_corners=False)
        scale, shift = self.affine(cond).chunk(2, dim=1)
        return (1 + scale) * x + shift

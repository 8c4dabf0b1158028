"""Transformer block with transposed (channel-wise) self-attention, after Restormer (Zamir et al. 2022).

MAFS's multi-stage transformer decoder (seed 002, Sec. III-D) uses "the same transformer as [65]" (SMFNet),
whose blocks are Restormer's multi-Dconv head transposed attention (MDTA) and a locally enhanced feed-forward
network (LeFF, Wang et al. Uformer 2022), each behind a channel LayerNorm with a residual connection. MDTA
attends across channels (a (C/h) x (C/h) map per head), so its cost is linear in the number of pixels and
it runs on full decoder maps at 640 x 480.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of every pixel of (B, C, H, W), with weight and bias."""

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels, eps=eps)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class TransposedAttention(nn.Module):
    """MDTA: Q, K, V from a 1 x 1 then depth-wise 3 x 3 conv; Q and K L2-normalised over pixels;
    ``softmax(t * Q K^T)`` over channels with a learned temperature ``t`` per head; 1 x 1 output projection."""

    def __init__(self, dim: int, heads: int = 2, bias: bool = False) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"TransposedAttention: dim {dim} is not divisible by heads {heads}")
        self.heads = heads
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.qkv = nn.Conv2d(dim, 3 * dim, 1, bias=bias)
        self.qkv_dw = nn.Conv2d(3 * dim, 3 * dim, 3, padding=1, groups=3 * dim, bias=bias)
        self.project = nn.Conv2d(dim, dim, 1, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv_dw(self.qkv(x)).reshape(b, 3, self.heads, c // self.heads, h * w).unbind(1)
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        attn = (q @ k.transpose(-2, -1) * self.temperature).softmax(dim=-1)
        return self.project((attn @ v).reshape(b, c, h, w))


class LeFF(nn.Module):
    """1 x 1 conv to ``hidden``, depth-wise 3 x 3 conv, 1 x 1 conv back, GELU after each of the first two."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(dim, hidden, 1),
            nn.GELU(),
            nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden),
            nn.GELU(),
            nn.Conv2d(hidden, dim, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


class TransposedTransformerBlock(nn.Module):
    """``x + MDTA(LN(x))`` then ``x + LeFF(LN(x))`` on (B, dim, H, W)."""

    def __init__(self, dim: int, heads: int = 2, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.norm1 = LayerNorm2d(dim)
        self.attn = TransposedAttention(dim, heads)
        self.norm2 = LayerNorm2d(dim)
        self.ffn = LeFF(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))

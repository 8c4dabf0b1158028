"""Cross-attention between two feature maps: queries from one, keys and values from the other.

``attend`` is scaled dot-product attention (Vaswani et al. 2017) on (B, C, H, W) maps; ``CrossAttention``
adds the projections. PSFusion's profound semantic fusion module (seed 001, eqs. 7-10) attends with one
query shared by both modalities and 3 x 3 conv + BN + ReLU projections; later methods use 1 x 1 projections,
several heads, or spatial reduction of the key/value map (PVT, Wang et al. 2021) when maps are large.

Every attention in taskfuse runs through ``sdpa``, which keeps PyTorch's cuDNN attention kernel out (the flash,
memory-efficient and plain kernels remain). DSIFuse's first bf16 training step from trained weights gave
non-finite gradients on an H100 (PyTorch 2.11, channels_last or compiled), the same step with cuDNN switched off
or in fp32 stayed finite (``docs/benchmark.md``), and cuDNN's bf16 attention backward has known faults of this
kind on H100s (pytorch/pytorch issue 196678, NVIDIA/cudnn-frontend issue 1072). On the same kind of GPU, bf16
attention of 1024 queries on 64 keys of width 256, the logits pushed to about -120, gave non-finite gradients for
every query through cuDNN and none through ``sdpa`` (tests/models/test_method_blocks.py). DSIFuse's own shapes
(equal query and key lengths) stayed finite through cuDNN in the same check, so what made its training diverge is
not settled; with ``sdpa``, all twelve DSIFuse trainings of the next run stayed finite.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from taskfuse.nn.conv import ConvBNAct
from taskfuse.nn.resample import replicate_pad

BACKENDS = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]
"""The kernels ``sdpa`` may use: all of PyTorch's but cuDNN's."""


def sdpa(q: Tensor, k: Tensor, v: Tensor, scale: float | None = None) -> Tensor:
    """``F.scaled_dot_product_attention`` of (B, heads, N, d) tensors on the kernels in ``BACKENDS``."""
    with sdpa_kernel(BACKENDS):
        return F.scaled_dot_product_attention(q, k, v, scale=scale)


def attend(q: Tensor, k: Tensor, v: Tensor, heads: int = 1, scale: float | None = None) -> Tensor:
    """``softmax(scale * Q K^T) V`` per head; q (B, C, H, W), k and v (B, C, h, w) -> (B, C, H, W).

    Channels are split into ``heads`` groups. ``scale`` defaults to ``(C / heads) ** -0.5``. Runs through
    ``sdpa``, whose fused kernels avoid storing the (HW x hw) matrix on GPU.
    """
    b, c, h, w = q.shape
    if c % heads or k.shape[1] != c or v.shape[1] != c:
        raise ValueError(f"attend: q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)} with {heads} heads")
    d = c // heads
    qh = q.reshape(b, heads, d, h * w).transpose(-1, -2)
    kh = k.reshape(b, heads, d, -1).transpose(-1, -2)
    vh = v.reshape(b, heads, d, -1).transpose(-1, -2)
    out = sdpa(qh, kh, vh, scale)
    return out.transpose(-1, -2).reshape(b, c, h, w)


class CrossAttention(nn.Module):
    """Attention of ``query`` features on ``context`` features, returning ``dim`` channels at the query's size.

    Args:
        q_channels: channels of the query map; with ``project_query=False`` it must equal ``dim`` and the
            query is used as given (for a query shared between several blocks).
        kv_channels: channels of the context map.
        dim: channels of queries, keys, values and output.
        heads: attention heads (``dim`` must be divisible by it).
        kernel_size: kernel of the projection convolutions (1, or 3 as in PSFusion eq. 7).
        reduction: r > 1 shrinks the context by an r x r stride-r convolution (after replicate-padding it to a
            multiple of r) before the key/value projections, so the attention matrix is (HW) x (hw / r^2).
        scale: logit scale; ``None`` gives 1 / sqrt(dim / heads).
        norm_act: projections are conv + BN + ReLU (PSFusion) instead of a plain conv.
    """

    def __init__(
        self,
        q_channels: int,
        kv_channels: int,
        dim: int,
        heads: int = 1,
        kernel_size: int = 1,
        reduction: int = 1,
        scale: float | None = None,
        norm_act: bool = False,
        project_query: bool = True,
    ) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"CrossAttention: dim {dim} is not divisible by heads {heads}")
        if not project_query and q_channels != dim:
            raise ValueError(f"CrossAttention: an unprojected query needs q_channels == dim, got {q_channels}")

        def proj(cin: int) -> nn.Module:
            if norm_act:
                return ConvBNAct(cin, dim, kernel_size, act="relu", bn=True)
            return nn.Conv2d(cin, dim, kernel_size, padding=kernel_size // 2)

        self.heads = heads
        self.scale = scale
        self.reduction = reduction
        self.q = proj(q_channels) if project_query else nn.Identity()
        self.reduce = nn.Conv2d(kv_channels, kv_channels, reduction, reduction) if reduction > 1 else nn.Identity()
        self.k = proj(kv_channels)
        self.v = proj(kv_channels)

    def forward(self, query: Tensor, context: Tensor) -> Tensor:
        r = self.reduction
        if r > 1:
            h, w = context.shape[-2:]
            context = self.reduce(replicate_pad(context, (0, (-w) % r, 0, (-h) % r)))
        return attend(self.q(query), self.k(context), self.v(context), self.heads, self.scale)

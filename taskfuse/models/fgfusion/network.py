"""FGFusion (Chen, Feng, Wang, Li, J. Beijing Inst. Technol. 2026; seed 003): foreground-guided fusion.

Dual-output backbone (eq. 1, Fig. 3), one per modality: the shallow feature extraction block (SFEB) keeps full
resolution (7 x 7 first conv, no downsampling, then a ResNet basic block); the deep feature extraction block
(DFEB) continues from it with stride-2 ResNet basic blocks to 1/4 resolution.

Fusion branch: the dense reconstruction module (DRM) stacks invertible cross-modal coupling blocks (eq. 2;
``taskfuse.nn.invertible`` with residual-block sub-networks and a sigmoid gate) on the shallow
features and fuses the outputs of all blocks.

Foreground branch: a dense block per modality (DeB) refines the deep features, then the semantic extraction
module applies multimodal self- and cross-attention (eq. 3): ``ir_se = Self(ir_D)``, ``vi_ce = Cross(vi_D,
ir_se)``, ``vi_se = Self(vi_ce)``, ``S = Cross(ir_se, vi_se)``, each a pre-norm transformer block.

Semantic injection (eqs. 4-5): ``F_u = γ ⊗ Norm(F) + β`` with γ, β from ``Conv(ReLU(Conv(S)))``
(``taskfuse.nn.injection``; scale parameterised as ``1 + γ``). The residual fidelity module (two
3 x 3 conv + BN + LeakyReLU with a skip) and ``(tanh(conv) + 1) / 2`` give the fused image (eq. 6); the
foreground head is a conv and a x4 transposed conv on S (eq. 7), returned as logits in ``aux["foreground"]``.

The paper gives no widths, block counts or attention settings (and no public code); chosen here: 32 shallow
and 64 deep channels, 3 coupling blocks, a 4-layer dense block with growth 16, 4 attention heads, keys and
values spatially reduced by 4 (PVT, so 640 x 480 inputs fit in memory), MLP ratio 2. Gray fused output from the
IR image and the visible luminance; colour from the visible chroma.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from taskfuse.errors import TaskfuseError
from taskfuse.models.base import FusionModel, FusionOutput
from taskfuse.nn.conv import ConvBNAct
from taskfuse.nn.cross_attention import CrossAttention
from taskfuse.nn.dense import DenseBlock
from taskfuse.nn.injection import SemanticInjection
from taskfuse.nn.invertible import DenseCouplingStack, ResidualBlock
from taskfuse.nn.resnet import BasicBlock
from taskfuse.nn.transposed_attention import LayerNorm2d


class DualOutputBackbone(nn.Module):
    """SFEB -> I^s (shallow, full resolution) and DFEB(I^s) -> I^p (deep, 1/4), eq. 1."""

    def __init__(self, in_channels: int, shallow: int, deep: int) -> None:
        super().__init__()
        self.sfeb = nn.Sequential(ConvBNAct(in_channels, shallow, 7), BasicBlock(shallow, shallow))
        self.dfeb = nn.Sequential(BasicBlock(shallow, deep, stride=2), BasicBlock(deep, deep, stride=2))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        s = self.sfeb(x)
        return s, self.dfeb(s)


class AttentionBlock(nn.Module):
    """Pre-norm transformer block: ``x + Attn(LN(x), LN(ctx))`` then ``x + MLP(LN(x))``. With ``cross=False``
    the context is ``x`` itself (self-attention, Vaswani et al. 2017), else a second map (cross-attention)."""

    def __init__(self, dim: int, heads: int, reduction: int, mlp_ratio: float, cross: bool) -> None:
        super().__init__()
        self.norm_q = LayerNorm2d(dim)
        self.norm_kv = LayerNorm2d(dim) if cross else None
        self.attn = CrossAttention(dim, dim, dim, heads=heads, reduction=reduction)
        self.out = nn.Conv2d(dim, dim, 1)
        self.norm_mlp = LayerNorm2d(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Conv2d(dim, hidden, 1), nn.GELU(), nn.Conv2d(hidden, dim, 1))

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        q = self.norm_q(x)
        if (context is None) != (self.norm_kv is None):
            raise ValueError("AttentionBlock: pass a context exactly when the block was built with cross=True")
        kv = q if self.norm_kv is None else self.norm_kv(context)
        x = x + self.out(self.attn(q, kv))
        return x + self.mlp(self.norm_mlp(x))


class SemanticExtraction(nn.Module):
    """SEM (eq. 3): multimodal self/cross attention from the dense-block features to the semantic map S."""

    def __init__(self, dim: int, heads: int, reduction: int, mlp_ratio: float) -> None:
        super().__init__()
        self.self_ir = AttentionBlock(dim, heads, reduction, mlp_ratio, cross=False)
        self.cross_vi = AttentionBlock(dim, heads, reduction, mlp_ratio, cross=True)
        self.self_vi = AttentionBlock(dim, heads, reduction, mlp_ratio, cross=False)
        self.cross_s = AttentionBlock(dim, heads, reduction, mlp_ratio, cross=True)

    def forward(self, ir: Tensor, vi: Tensor) -> Tensor:
        ir_se = self.self_ir(ir)
        vi_se = self.self_vi(self.cross_vi(vi, ir_se))
        return self.cross_s(ir_se, vi_se)


class FGFusion(FusionModel):
    """FGFusion. ``aux["foreground"]`` holds the foreground logits (B, 1, H, W) of eq. 7.

    Inputs are padded to a multiple of 16 so that the 1/4-resolution maps can be reduced by ``reduction``.
    """

    input_mode = "y"
    output_mode = "y"
    stride = 16

    def __init__(
        self,
        shallow_channels: int = 32,
        deep_channels: int = 64,
        coupling_blocks: int = 3,
        dense_layers: int = 4,
        dense_growth: int = 16,
        heads: int = 4,
        reduction: int = 4,
        mlp_ratio: float = 2.0,
    ) -> None:
        super().__init__()
        if reduction not in (1, 2, 4):
            raise TaskfuseError(f"fgfusion: reduction must be 1, 2 or 4 (inputs are padded to 16), got {reduction}")
        c, d = shallow_channels, deep_channels
        self.backbone_vi = DualOutputBackbone(1, c, d)
        self.backbone_ir = DualOutputBackbone(1, c, d)
        self.drm = DenseCouplingStack(c, c, 2 * c, coupling_blocks, ResidualBlock, scale="sigmoid")
        self.dense_vi = DenseBlock(d, dense_growth, dense_layers, act="relu", bn=True, out_channels=d)
        self.dense_ir = DenseBlock(d, dense_growth, dense_layers, act="relu", bn=True, out_channels=d)
        self.sem = SemanticExtraction(d, heads, reduction, mlp_ratio)
        self.sim = SemanticInjection(2 * c, d, hidden=d, pre_conv=False)
        self.rfm = nn.Sequential(ConvBNAct(2 * c, 2 * c, act="lrelu"), ConvBNAct(2 * c, 2 * c, act=None))
        self.out = nn.Conv2d(2 * c, 1, 3, padding=1)
        self.foreground = nn.Sequential(ConvBNAct(d, d // 4, 3), nn.ConvTranspose2d(d // 4, 1, kernel_size=4, stride=4))

    def fuse(self, ir: Tensor, vi: Tensor) -> FusionOutput:
        vi_s, vi_p = self.backbone_vi(vi)
        ir_s, ir_p = self.backbone_ir(ir)
        f = self.drm(vi_s, ir_s)
        s = self.sem(self.dense_ir(ir_p), self.dense_vi(vi_p))
        fu = self.sim(f, s)
        fu = F.leaky_relu(fu + self.rfm(fu), 0.2)
        fused = (self.out(fu).tanh() + 1) / 2
        return FusionOutput(fused, {"foreground": self.foreground(s)})

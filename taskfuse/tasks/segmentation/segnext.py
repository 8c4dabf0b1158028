"""SegNeXt (Guo et al., NeurIPS 2022): the MSCAN encoder and the light Hamburger decoder.

Encoder (paper Sec. 3.1, Fig. 2, Table 1). A stem of two 3x3 stride-2 convs (BN, GELU between, BN after) starts
stage 1; stages 2-4 start with a 3x3 stride-2 conv + BN. Each block is ``x = x + DropPath(ls1 * Attn(BN(x)))``,
``x = x + DropPath(ls2 * FFN(BN(x)))`` with layer-scale vectors initialised to 0.01; ``Attn`` is
1x1 conv, GELU, MSCA, 1x1 conv plus the input. MSCA (Eq. 1-2) is
``Att = Conv1x1(DW5x5(F) + sum_i Scale_i(DW5x5(F)))``, ``Out = Att * F`` with three depthwise strip branches
1x7 then 7x1, 1x11 then 11x1, 1x21 then 21x1. The FFN is 1x1 conv, 3x3 depthwise conv, GELU, 1x1 conv. Every
stage ends with LayerNorm over channels. MLP ratios 8, 8, 4, 4. Sizes (Table 1; head widths and drop-path rates
from the official configs):

====  ====================  ===============  ===========  =========
size  widths                depths           head width   drop path
====  ====================  ===============  ===========  =========
t     32, 64, 160, 256      3, 3, 5, 2       256          0.1
s     64, 128, 320, 512     2, 2, 4, 2       256          0.1
b     64, 128, 320, 512     3, 3, 12, 3      512          0.1
l     64, 128, 320, 512     3, 5, 27, 3      1024         0.3
====  ====================  ===============  ===========  =========

Decoder (Sec. 3.2, Fig. 3): stages 2-4 are resized to stride 8, concatenated, squeezed by 1x1 conv + GroupNorm(32)
+ ReLU, passed through the Hamburger (Geng et al., ICLR 2021: 1x1 conv with bias, ReLU, NMF, 1x1 conv + GN, then
ReLU of the sum with its input), aligned by 1x1 conv + GN + ReLU, dropout 0.1 and a 1x1 classifier; the stride-8
logits are upsampled bilinearly to the input.

NMF (HamNet's multiplicative-update NMF; SegNeXt config ``MD_S=1, MD_R=16, train_steps=6, eval_steps=7``):
the (C, HW) map X >= 0 is factorised as D C^T with R = 16 bases D (C, R) drawn uniform and column-normalised,
coefficients initialised as softmax(X^T D) and refined by 6 (training) or 7 (evaluation) multiplicative updates
``C <- C * (X^T D) / (C D^T D)``, ``D <- D * (X C) / (D C^T C)`` (1e-6 added to denominators), then one more
coefficient update, and the module returns D C^T. As in the SegNeXt/mmseg code, gradients flow through all
unrolled steps (HamNet's one-step gradient is not used). The official code draws new random bases at every
call, so its test results vary with the seed; here training draws them on the input's device at every call, and
evaluation uses one set drawn when the module is built from a generator seeded with ``nmf_seed``, the same for
every image of a batch, which makes inference deterministic and an image's result independent of the batch it
comes in. Neither makes a tensor on the CPU, which would keep a compiled network from replaying CUDA graphs.

Parameter names equal mmseg's (``backbone.patch_embed1.proj.0.weight``, ``backbone.block1.0.attn.
spatial_gating_unit.conv0_1.weight``, ``decode_head.squeeze.gn.weight``, ``decode_head.hamburger.ham_in.conv.bias``,
``decode_head.conv_seg.weight``), so an mmseg SegNeXt checkpoint converted to safetensors should load as is (checked
against mmseg's module names, not against a released file), and so do ImageNet MSCAN encoders (their ``head``
classifier unused; ``load_pretrained``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from taskfuse.nn.depthwise import NCHWConv2d
from taskfuse.nn.resample import resize
from taskfuse.tasks.segmentation.base import SEGMENTERS, SegmentationOutput, Segmenter
from taskfuse.tasks.segmentation.layers import ConvModule, DropPath, init_encoder_weights


@dataclass(frozen=True)
class MSCANSize:
    widths: tuple[int, int, int, int]
    depths: tuple[int, int, int, int]
    head_width: int
    drop_path_rate: float


MSCAN_SIZES: dict[str, MSCANSize] = {
    "t": MSCANSize((32, 64, 160, 256), (3, 3, 5, 2), 256, 0.1),
    "s": MSCANSize((64, 128, 320, 512), (2, 2, 4, 2), 256, 0.1),
    "b": MSCANSize((64, 128, 320, 512), (3, 3, 12, 3), 512, 0.1),
    "l": MSCANSize((64, 128, 320, 512), (3, 5, 27, 3), 1024, 0.3),
}
MLP_RATIOS = (8, 8, 4, 4)
NMF_RANK = 16
NMF_STEPS = (6, 7)


class StemConv(nn.Module):
    """Two 3x3 stride-2 convs (stride 4 overall) with BN, GELU between."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.proj = nn.Sequential(
            nn.Conv2d(cin, cout // 2, 3, 2, 1),
            nn.BatchNorm2d(cout // 2),
            nn.GELU(),
            nn.Conv2d(cout // 2, cout, 3, 2, 1),
            nn.BatchNorm2d(cout),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x)


class OverlapPatchEmbed(nn.Module):
    """3x3 stride-2 conv + BN between stages."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(cin, cout, 3, 2, 1)
        self.norm = nn.BatchNorm2d(cout)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(self.proj(x))


class AttentionModule(nn.Module):
    """MSCA (Eq. 1-2): depthwise 5x5, three strip-conv branches (7, 11, 21), 1x1 mixing, times the input. The
    strips run in NCHW on CUDA (``NCHWConv2d``), where cuDNN's NHWC strip kernels are slower: on one H100 MAFS's
    compiled channels_last teacher step ran 121.5 images/s with them against 108.4 (docs/training.md)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv0 = nn.Conv2d(dim, dim, 5, padding=2, groups=dim)
        for i, k in enumerate((7, 11, 21)):
            setattr(self, f"conv{i}_1", NCHWConv2d(dim, dim, (1, k), padding=(0, k // 2), groups=dim))
            setattr(self, f"conv{i}_2", NCHWConv2d(dim, dim, (k, 1), padding=(k // 2, 0), groups=dim))
        self.conv3 = nn.Conv2d(dim, dim, 1)

    def forward(self, x: Tensor) -> Tensor:
        attn = self.conv0(x)
        scales = [getattr(self, f"conv{i}_2")(getattr(self, f"conv{i}_1")(attn)) for i in range(3)]
        return self.conv3(attn + sum(scales)) * x


class SpatialAttention(nn.Module):
    """1x1 conv, GELU, MSCA, 1x1 conv, plus the input."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj_1 = nn.Conv2d(dim, dim, 1)
        self.activation = nn.GELU()
        self.spatial_gating_unit = AttentionModule(dim)
        self.proj_2 = nn.Conv2d(dim, dim, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj_2(self.spatial_gating_unit(self.activation(self.proj_1(x)))) + x


class DWConv(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 3, 1, 1, groups=dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.dwconv(x)


class Mlp(nn.Module):
    """1x1 conv, 3x3 depthwise conv, GELU, 1x1 conv."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.dwconv = DWConv(hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.dwconv(self.fc1(x))))


class MSCABlock(nn.Module):
    def __init__(self, dim: int, mlp_ratio: int, drop_path: float) -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm2d(dim)
        self.attn = SpatialAttention(dim)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.BatchNorm2d(dim)
        self.mlp = Mlp(dim, dim * mlp_ratio)
        self.layer_scale_1 = nn.Parameter(torch.full((dim,), 1e-2))
        self.layer_scale_2 = nn.Parameter(torch.full((dim,), 1e-2))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.drop_path(self.layer_scale_1[:, None, None] * self.attn(self.norm1(x)))
        return x + self.drop_path(self.layer_scale_2[:, None, None] * self.mlp(self.norm2(x)))


class MSCAN(nn.Module):
    """MSCAN encoder returning the four stage maps (strides 4, 8, 16, 32); attributes named as mmseg's."""

    def __init__(self, size: MSCANSize, in_chans: int = 3, drop_path_rate: float | None = None) -> None:
        super().__init__()
        rate = size.drop_path_rate if drop_path_rate is None else drop_path_rate
        n = sum(size.depths)
        rates = [rate * i / max(n - 1, 1) for i in range(n)]
        cin = in_chans
        for i, (dim, depth) in enumerate(zip(size.widths, size.depths, strict=True)):
            first = sum(size.depths[:i])
            setattr(self, f"patch_embed{i + 1}", StemConv(cin, dim) if i == 0 else OverlapPatchEmbed(cin, dim))
            setattr(
                self,
                f"block{i + 1}",
                nn.ModuleList(MSCABlock(dim, MLP_RATIOS[i], rates[first + j]) for j in range(depth)),
            )
            setattr(self, f"norm{i + 1}", nn.LayerNorm(dim))
            cin = dim
        init_encoder_weights(self)

    def forward(self, x: Tensor) -> list[Tensor]:
        feats = []
        for i in range(1, 5):
            x = getattr(self, f"patch_embed{i}")(x)
            for blk in getattr(self, f"block{i}"):
                x = blk(x)
            x = getattr(self, f"norm{i}")(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
            feats.append(x)
        return feats


class NMF2D(nn.Module):
    """Non-negative matrix factorisation by multiplicative updates (see the module docstring); no parameters."""

    def __init__(self, channels: int, rank: int = NMF_RANK, steps: tuple[int, int] = NMF_STEPS, seed: int = 0) -> None:
        super().__init__()
        self.rank = rank
        self.train_steps, self.eval_steps = steps
        generator = torch.Generator().manual_seed(seed)
        self.register_buffer("eval_bases", torch.rand((1, channels, rank), generator=generator), persistent=False)

    def _bases(self, b: int, c: int, like: Tensor) -> Tensor:
        if self.training:
            bases = torch.rand((b, c, self.rank), device=like.device, dtype=like.dtype)
        else:
            bases = self.eval_bases.to(like.dtype).expand(b, c, self.rank)
        return F.normalize(bases, dim=1)

    @staticmethod
    def _update_coef(x: Tensor, bases: Tensor, coef: Tensor) -> Tensor:
        return coef * torch.bmm(x.transpose(1, 2), bases) / (coef.bmm(bases.transpose(1, 2).bmm(bases)) + 1e-6)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        x = x.reshape(b, c, h * w)
        bases = self._bases(b, c, x)
        coef = torch.softmax(torch.bmm(x.transpose(1, 2), bases), dim=-1)
        for _ in range(self.train_steps if self.training else self.eval_steps):
            coef = self._update_coef(x, bases, coef)
            bases = bases * torch.bmm(x, coef) / (bases.bmm(coef.transpose(1, 2).bmm(coef)) + 1e-6)
        coef = self._update_coef(x, bases, coef)
        return torch.bmm(bases, coef.transpose(1, 2)).reshape(b, c, h, w)


class Hamburger(nn.Module):
    """1x1 conv (bias) -> ReLU -> NMF -> 1x1 conv + GN, then ReLU(input + that)."""

    def __init__(self, dim: int, nmf_seed: int = 0) -> None:
        super().__init__()
        self.ham_in = ConvModule(dim, dim, 1, norm=None, act=False)
        self.ham = NMF2D(dim, seed=nmf_seed)
        self.ham_out = ConvModule(dim, dim, 1, norm="gn", act=False)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(x + self.ham_out(self.ham(F.relu(self.ham_in(x)))))


class LightHamHead(nn.Module):
    """Stages 2-4 at stride 8 -> squeeze -> Hamburger -> align -> dropout -> classifier."""

    def __init__(self, in_dims: tuple[int, ...], width: int, num_classes: int, dropout: float, nmf_seed: int) -> None:
        super().__init__()
        self.squeeze = ConvModule(sum(in_dims), width, 1, norm="gn")
        self.hamburger = Hamburger(width, nmf_seed)
        self.align = ConvModule(width, width, 1, norm="gn")
        self.dropout = nn.Dropout2d(dropout)
        self.conv_seg = nn.Conv2d(width, num_classes, 1)

    def forward(self, feats: list[Tensor]) -> Tensor:
        size = feats[0].shape[-2:]
        x = self.squeeze(torch.cat([resize(f, size) for f in feats], 1))
        return self.conv_seg(self.dropout(self.align(self.hamburger(x))))


class SegNeXt(Segmenter):
    """SegNeXt-``size`` (t, s, b, l); see the module docstring."""

    classifier_prefixes = ("decode_head.conv_seg.",)
    backbone_arch = "mscan"

    def __init__(
        self,
        size: str = "t",
        num_classes: int = 9,
        in_chans: int = 3,
        drop_path_rate: float | None = None,
        dropout: float = 0.1,
        nmf_seed: int = 0,
        normalize: bool = False,
    ) -> None:
        super().__init__(num_classes, in_chans, stride=32, normalize=normalize)
        cfg = MSCAN_SIZES[size]
        self.backbone = MSCAN(cfg, in_chans, drop_path_rate)
        self.decode_head = LightHamHead(cfg.widths[1:], cfg.head_width, num_classes, dropout, nmf_seed)

    def segment(self, x: Tensor) -> SegmentationOutput:
        feats = self.backbone(x)[1:]
        return SegmentationOutput(resize(self.decode_head(feats), x.shape[-2:]))


for _size in MSCAN_SIZES:
    SEGMENTERS.register(f"segnext-{_size}")(partial(SegNeXt, _size))

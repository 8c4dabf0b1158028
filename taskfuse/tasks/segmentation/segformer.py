"""SegFormer (Xie et al., NeurIPS 2021): Mix Transformer encoder MiT-B0..B5 and the all-MLP decoder.

Encoder (paper Sec. 3.1, Table 6). Four stages; each starts with an overlapping patch embedding (7x7 conv,
stride 4, padding 3 for stage 1; 3x3, stride 2, padding 1 after), followed by LayerNorm, then ``depths[i]``
blocks ``x = x + DropPath(Attn(LN(x)))``, ``x = x + DropPath(MixFFN(LN(x)))`` and a closing LayerNorm.
Efficient self-attention (Eq. 2) reduces the key/value sequence by ``sr_ratio`` R with an R x R, stride-R conv
and LayerNorm; heads 1, 2, 5, 8 and R = 8, 4, 2, 1 in every size. Mix-FFN (Eq. 3) is
``fc2(GELU(DWConv3x3(fc1(x))))`` with hidden width 4x. Stochastic depth grows linearly from 0 to
``drop_path_rate`` (0.1) over all blocks. Widths and depths per size:

====  ====================  ===============  ===========
size  widths                depths           decoder dim
====  ====================  ===============  ===========
b0    32, 64, 160, 256      2, 2, 2, 2       256
b1    64, 128, 320, 512     2, 2, 2, 2       256
b2    64, 128, 320, 512     3, 4, 6, 3       768
b3    64, 128, 320, 512     3, 4, 18, 3      768
b4    64, 128, 320, 512     3, 8, 27, 3      768
b5    64, 128, 320, 512     3, 6, 40, 3      768
====  ====================  ===============  ===========

Decoder (Sec. 3.2, Eq. 4): a linear layer maps every stage to the decoder dim, all are upsampled to 1/4,
concatenated (stage 4 first), fused by a 1x1 conv + BN + ReLU, dropout 0.1, and a 1x1 conv predicts the classes;
the 1/4 logits are upsampled bilinearly (align_corners=False) to the input.

Parameter names are those of the NVlabs release (``NVlabs/SegFormer``, mmseg 0.x based), e.g.
``backbone.patch_embed1.proj.weight``, ``backbone.block1.0.attn.q.weight``, ``backbone.block1.0.attn.kv.weight``
(keys then values, stacked), ``backbone.block1.0.attn.sr.weight``, ``backbone.block1.0.mlp.dwconv.dwconv.weight``,
``backbone.norm1.weight``, ``decode_head.linear_c1.proj.weight``, ``decode_head.linear_fuse.conv.weight``,
``decode_head.linear_fuse.bn.running_mean``, ``decode_head.linear_pred.weight``. Such a checkpoint, converted to
safetensors, loads as is (its unused ``decode_head.conv_seg.*`` dropped). ``convert_official_segformer_state_dict``
also accepts the ImageNet MiT encoders of that release (``patch_embed1.proj.weight`` ... without prefix, and a
``head.*`` classifier that is dropped) and the HuggingFace ``transformers`` release
(``segformer.encoder.patch_embeddings.0.proj.weight``, ``segformer.encoder.block.0.0.attention.self.query``,
separate ``key``/``value`` that are stacked into ``kv``, ``decode_head.linear_c.0.proj``,
``decode_head.linear_fuse`` + ``decode_head.batch_norm``, ``decode_head.classifier``). Of the mmseg 1.x
re-implementation (``backbone.layers.0.0.projection``, ``nn.MultiheadAttention``) the ImageNet encoders load
(``taskfuse.nn.pretrained.mit_names``); its decode head has other layers and is not supported.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial

import torch
from torch import Tensor, nn

from taskfuse.nn.cross_attention import sdpa
from taskfuse.nn.pretrained import mit_names
from taskfuse.nn.resample import resize
from taskfuse.tasks.segmentation.base import SEGMENTERS, SegmentationOutput, Segmenter, load_pretrained
from taskfuse.tasks.segmentation.layers import ConvModule, DropPath, init_encoder_weights

__all__ = ["MIT_SIZES", "SegFormer", "convert_official_segformer_state_dict", "load_pretrained"]


@dataclass(frozen=True)
class MiTSize:
    widths: tuple[int, int, int, int]
    depths: tuple[int, int, int, int]
    decoder_dim: int


MIT_SIZES: dict[str, MiTSize] = {
    "b0": MiTSize((32, 64, 160, 256), (2, 2, 2, 2), 256),
    "b1": MiTSize((64, 128, 320, 512), (2, 2, 2, 2), 256),
    "b2": MiTSize((64, 128, 320, 512), (3, 4, 6, 3), 768),
    "b3": MiTSize((64, 128, 320, 512), (3, 4, 18, 3), 768),
    "b4": MiTSize((64, 128, 320, 512), (3, 8, 27, 3), 768),
    "b5": MiTSize((64, 128, 320, 512), (3, 6, 40, 3), 768),
}
HEADS = (1, 2, 5, 8)
SR_RATIOS = (8, 4, 2, 1)
MLP_RATIO = 4


class OverlapPatchEmbed(nn.Module):
    """Strided conv with overlapping windows, then LayerNorm on the tokens."""

    def __init__(self, cin: int, cout: int, patch: int, stride: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(cin, cout, patch, stride, patch // 2)
        self.norm = nn.LayerNorm(cout)

    def forward(self, x: Tensor) -> tuple[Tensor, int, int]:
        x = self.proj(x)
        h, w = x.shape[-2:]
        return self.norm(x.flatten(2).transpose(1, 2)), h, w


class EfficientSelfAttention(nn.Module):
    """Multi-head attention whose keys/values come from a sequence shortened by ``sr_ratio``**2 (Eq. 2)."""

    def __init__(self, dim: int, heads: int, sr_ratio: int) -> None:
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        self.sr_ratio = sr_ratio
        if sr_ratio > 1:
            self.sr = nn.Conv2d(dim, dim, sr_ratio, sr_ratio)
            self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor, h: int, w: int) -> Tensor:
        b, n, c = x.shape
        q = self.q(x).view(b, n, self.heads, c // self.heads).transpose(1, 2)
        if self.sr_ratio > 1:
            x = self.norm(self.sr(x.transpose(1, 2).reshape(b, c, h, w)).flatten(2).transpose(1, 2))
        k, v = self.kv(x).view(b, -1, 2, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        out = sdpa(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class DWConv(nn.Module):
    """3x3 depthwise conv on tokens reshaped to (B, C, H, W): the positional cue of Mix-FFN."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 3, 1, 1, groups=dim)

    def forward(self, x: Tensor, h: int, w: int) -> Tensor:
        b, _, c = x.shape
        return self.dwconv(x.transpose(1, 2).reshape(b, c, h, w)).flatten(2).transpose(1, 2)


class MixFFN(nn.Module):
    """Eq. 3: fc2(GELU(DWConv3x3(fc1(x))))."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.dwconv = DWConv(hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor, h: int, w: int) -> Tensor:
        return self.fc2(self.act(self.dwconv(self.fc1(x), h, w)))


class MiTBlock(nn.Module):
    def __init__(self, dim: int, heads: int, sr_ratio: int, drop_path: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = EfficientSelfAttention(dim, heads, sr_ratio)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = MixFFN(dim, dim * MLP_RATIO)

    def forward(self, x: Tensor, h: int, w: int) -> Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), h, w))
        return x + self.drop_path(self.mlp(self.norm2(x), h, w))


class MixTransformer(nn.Module):
    """MiT encoder returning the four stage maps (strides 4, 8, 16, 32); attributes named as NVlabs'."""

    def __init__(self, size: MiTSize, in_chans: int = 3, drop_path_rate: float = 0.1) -> None:
        super().__init__()
        n = sum(size.depths)
        rates = [drop_path_rate * i / max(n - 1, 1) for i in range(n)]
        cin = in_chans
        for i, (dim, depth) in enumerate(zip(size.widths, size.depths, strict=True)):
            first = sum(size.depths[:i])
            setattr(self, f"patch_embed{i + 1}", OverlapPatchEmbed(cin, dim, 7 if i == 0 else 3, 4 if i == 0 else 2))
            setattr(
                self,
                f"block{i + 1}",
                nn.ModuleList(MiTBlock(dim, HEADS[i], SR_RATIOS[i], rates[first + j]) for j in range(depth)),
            )
            setattr(self, f"norm{i + 1}", nn.LayerNorm(dim, eps=1e-6))
            cin = dim
        init_encoder_weights(self)

    def forward(self, x: Tensor) -> list[Tensor]:
        feats = []
        for i in range(1, 5):
            x, h, w = getattr(self, f"patch_embed{i}")(x)
            for blk in getattr(self, f"block{i}"):
                x = blk(x, h, w)
            x = getattr(self, f"norm{i}")(x)
            x = x.transpose(1, 2).reshape(x.shape[0], -1, h, w)
            feats.append(x)
        return feats


class MLP(nn.Module):
    """Per-pixel linear projection of a (B, C, H, W) map (the decoder's "linear_c*" layers)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.proj = nn.Linear(cin, cout)

    def forward(self, x: Tensor) -> Tensor:
        b, _, h, w = x.shape
        return self.proj(x.flatten(2).transpose(1, 2)).transpose(1, 2).reshape(b, -1, h, w)


class SegFormerHead(nn.Module):
    """All-MLP decoder (Eq. 4)."""

    def __init__(self, in_dims: tuple[int, ...], dim: int, num_classes: int, dropout: float = 0.1) -> None:
        super().__init__()
        for i, cin in enumerate(in_dims):
            setattr(self, f"linear_c{i + 1}", MLP(cin, dim))
        self.linear_fuse = ConvModule(len(in_dims) * dim, dim, 1, norm="bn")
        self.dropout = nn.Dropout2d(dropout)
        self.linear_pred = nn.Conv2d(dim, num_classes, 1)

    def forward(self, feats: list[Tensor]) -> Tensor:
        size = feats[0].shape[-2:]
        outs = [resize(getattr(self, f"linear_c{i + 1}")(f), size) for i, f in enumerate(feats)]
        return self.linear_pred(self.dropout(self.linear_fuse(torch.cat(outs[::-1], 1))))


class SegFormer(Segmenter):
    """SegFormer-``size`` (b0..b5) for ``num_classes`` classes; see the module docstring."""

    classifier_prefixes = ("decode_head.linear_pred.",)
    backbone_arch = "mit"

    def __init__(
        self,
        size: str = "b0",
        num_classes: int = 9,
        in_chans: int = 3,
        drop_path_rate: float = 0.1,
        dropout: float = 0.1,
        normalize: bool = False,
    ) -> None:
        super().__init__(num_classes, in_chans, stride=32, normalize=normalize)
        cfg = MIT_SIZES[size]
        self.backbone = MixTransformer(cfg, in_chans, drop_path_rate)
        self.decode_head = SegFormerHead(cfg.widths, cfg.decoder_dim, num_classes, dropout)

    def segment(self, x: Tensor) -> SegmentationOutput:
        return SegmentationOutput(resize(self.decode_head(self.backbone(x)), x.shape[-2:]))

    @staticmethod
    def convert_state_dict(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
        return convert_official_segformer_state_dict(state_dict)


_HF_DECODER: list[tuple[str, str]] = [
    ("decode_head.linear_fuse.", "decode_head.linear_fuse.conv."),
    ("decode_head.batch_norm.", "decode_head.linear_fuse.bn."),
    ("decode_head.classifier.", "decode_head.linear_pred."),
]


def convert_official_segformer_state_dict(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Map an official SegFormer / MiT state dict onto ``SegFormer``'s parameter names.

    Accepts the NVlabs release (``backbone.*``/``decode_head.*``; ``decode_head.conv_seg`` is unused there and
    dropped), its ImageNet MiT encoders (unprefixed ``patch_embed1.*``, ``block1.*``, ``norm1.*``; the ``head``
    classifier dropped), mmseg 1.x MiT encoders and the HuggingFace release (``segformer.encoder.*``; the ImageNet
    ``classifier`` dropped). Encoder names are mapped by ``taskfuse.nn.pretrained.mit_names``; the format is
    recognised from the key names.
    """
    huggingface = any(k.startswith("segformer.") for k in state_dict)
    encoder: dict[str, Tensor] = {}
    out: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        if key.startswith(("decode_head.conv_seg.", "head.", "classifier.")):
            continue
        if not key.startswith("decode_head."):
            encoder[key] = value
            continue
        key = re.sub(r"^decode_head\.linear_c\.(\d+)\.", lambda m: f"decode_head.linear_c{int(m[1]) + 1}.", key)
        for old, ours in _HF_DECODER if huggingface else ():
            key = key.replace(old, ours)
        out[key] = value
    return {f"backbone.{k}": v for k, v in mit_names(encoder).items()} | out


for _size in MIT_SIZES:
    SEGMENTERS.register(f"segformer-{_size}")(partial(SegFormer, _size))

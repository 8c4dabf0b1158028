"""The bilateral segmentation network SeAFusion trains its fusion net through (``Linfeng-Tang/SeAFusion``,
``model_TII.py``, class ``BiSeNet``), which the application-guided fusion paper (seed 000, Sec. 3.3.2) uses as
"the real-time semantic segmentation model (Peng et al., 2021)".

It is a BiSeNet-V1 variant without the spatial path and without the feature fusion module (both are defined but
unused in ``model_TII.py``): a ResNet-18 context path (``cp.resnet``; stride-8, 16, 32 features) with an attention
refinement module (ARM: 3x3 conv-BN-LeakyReLU, then a channel gate from global average pooling, 1x1 conv, BN,
sigmoid) on each of the three, reduced to 128 channels and merged top-down:

* ``a32 = ARM32(f32)``; ``up32 = head32(up(a32, 1/16))``; ``c16 = up(sp16([up32, ARM16(f16)]), 1/8)``;
* ``up16 = head16(up(ARM16(f16), 1/8))``; ``c8 = sp8([up16, ARM8(f8)])``;
* ``c16 = c16 * fuse1(up(a32, 1/8))``; ``out8 = fuse(c8 * fuse2(c16))`` where ``fuse1``/``fuse2`` are 1x1
  conv-BN-sigmoid gates, ``sp*``/``fuse`` 1x1 and ``head*`` 3x3 conv-BN-LeakyReLU.

The main head (``conv_out``: 3x3 conv 128 -> 128, BN, LeakyReLU, 1x1 conv to the classes) reads ``out8``; the one
auxiliary head (``conv_out16``: 128 -> 64 -> classes) reads the stride-16 ARM output. (BiSeNet V1 had a second
auxiliary head on the stride-32 path; SeAFusion's code has it commented out.) Both are upsampled to the input with
align_corners=True; inner upsampling uses align_corners=False, as in the original. LeakyReLU has PyTorch's default
slope 0.01 (``F.leaky_relu``). The auxiliary logits are returned in eval mode too, because SeAFusion computes its
semantic loss ``L_main + 0.1 L_aux`` (seed 000 Eq. 9) through a frozen segmenter in ``eval()`` mode.

Parameter names equal those of SeAFusion's code, so its ``model_final.pth`` converted to safetensors should load
as is (not checked against a released file); a bare torchvision or timm ResNet-18 (ImageNet) state dict loads
into ``cp.resnet`` (``fc`` unused; ``load_pretrained``). SeAFusion starts from ImageNet ResNet-18 weights
(``train.seg_pretrained``); without them the backbone keeps He initialisation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from taskfuse.nn import ResNet
from taskfuse.nn.resample import resize
from taskfuse.tasks.segmentation.base import SEGMENTERS, SegmentationOutput, Segmenter


class ConvBNReLU(nn.Module):
    """k x k conv (no bias, same padding), BN, LeakyReLU(0.01)."""

    def __init__(self, cin: int, cout: int, k: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, 1, k // 2, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: Tensor) -> Tensor:
        return F.leaky_relu(self.bn(self.conv(x)))


class ConvBNSig(nn.Module):
    """1x1 conv (no bias), BN, sigmoid: a per-pixel, per-channel gate."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 1, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: Tensor) -> Tensor:
        return torch.sigmoid(self.bn(self.conv(x)))


class AttentionRefinementModule(nn.Module):
    """3x3 conv-BN-LeakyReLU, then multiply by a channel gate sigmoid(BN(conv1x1(global average)))."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = ConvBNReLU(cin, cout, 3)
        self.conv_atten = nn.Conv2d(cout, cout, 1, bias=False)
        self.bn_atten = nn.BatchNorm2d(cout)

    def forward(self, x: Tensor) -> Tensor:
        feat = self.conv(x)
        return feat * torch.sigmoid(self.bn_atten(self.conv_atten(feat.mean((2, 3), keepdim=True))))


class BiSeNetOutput(nn.Module):
    """Segmentation head: 3x3 conv-BN-LeakyReLU to ``mid`` channels, 1x1 conv (no bias) to the classes."""

    def __init__(self, cin: int, mid: int, num_classes: int) -> None:
        super().__init__()
        self.conv = ConvBNReLU(cin, mid, 3)
        self.conv_out = nn.Conv2d(mid, num_classes, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv_out(self.conv(x))


class ContextPath(nn.Module):
    """ResNet-18 with ARMs and the gated top-down merge of the module docstring; returns (out8, arm16)."""

    def __init__(self, in_chans: int = 3) -> None:
        super().__init__()
        self.resnet = ResNet(18, in_chans)
        self.arm32 = AttentionRefinementModule(512, 128)
        self.arm16 = AttentionRefinementModule(256, 128)
        self.arm8 = AttentionRefinementModule(128, 128)
        self.sp16 = ConvBNReLU(256, 128, 1)
        self.sp8 = ConvBNReLU(256, 128, 1)
        self.conv_head32 = ConvBNReLU(128, 128, 3)
        self.conv_head16 = ConvBNReLU(128, 128, 3)
        self.conv_fuse1 = ConvBNSig(128, 128)
        self.conv_fuse2 = ConvBNSig(128, 128)
        self.conv_fuse = ConvBNReLU(128, 128, 1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        _, f8, f16, f32 = self.resnet(x)
        size8, size16 = f8.shape[-2:], f16.shape[-2:]
        a32 = self.arm32(f32)
        up32 = self.conv_head32(resize(a32, size16))
        a16 = self.arm16(f16)
        cat16 = resize(self.sp16(torch.cat((up32, a16), 1)), size8)
        up16 = self.conv_head16(resize(a16, size8))
        cat8 = self.sp8(torch.cat((up16, self.arm8(f8)), 1))
        cat16 = self.conv_fuse1(resize(a32, size8)) * cat16
        return self.conv_fuse(cat8 * self.conv_fuse2(cat16)), a16


class BiSeNet(Segmenter):
    """SeAFusion's BiSeNet: main logits plus one auxiliary logit map (``aux[0]``, from the stride-16 path)."""

    classifier_prefixes = ("conv_out.conv_out.", "conv_out16.conv_out.")
    backbone_arch = "resnet"
    backbone_path = "cp.resnet"

    def __init__(self, num_classes: int = 9, in_chans: int = 3, normalize: bool = False) -> None:
        super().__init__(num_classes, in_chans, stride=32, normalize=normalize)
        self.cp = ContextPath(in_chans)
        self.conv_out = BiSeNetOutput(128, 128, num_classes)
        self.conv_out16 = BiSeNetOutput(128, 64, num_classes)
        for name, m in self.named_modules():
            if isinstance(m, nn.Conv2d) and not name.startswith("cp.resnet."):
                nn.init.kaiming_normal_(m.weight, a=1)

    def segment(self, x: Tensor) -> SegmentationOutput:
        out8, a16 = self.cp(x)
        size = x.shape[-2:]
        main = resize(self.conv_out(out8), size, align_corners=True)
        return SegmentationOutput(main, [resize(self.conv_out16(a16), size, align_corners=True)])


SEGMENTERS.register("bisenet")(BiSeNet)

"""PSFusion (Tang, Zhang, Xu, Ma 2023, Inf. Fusion 99; seed 001): progressive semantic injection and scene fidelity.

Data flow (equation numbers of seed 001):

* two modality branches (IR 1 channel, VIS RGB): superficial feature extraction blocks SFEB1 (full
  resolution) and SFEB2 (stride 2) replace the first ResNet layer, then ResNet stages 1-4 (eqs. 1-3), giving
  F^1..F^6 at strides 1, 2, 4, 8, 16, 32;
* shallow levels 1-3 fused by the superficial detail fusion module (SDFM, eqs. 4-6), deep levels 4-6 by the
  profound semantic fusion module (PSFM, cross-attention, eqs. 7-10);
* sparse semantic perception: levels 3-6 projected, upsampled to stride 4 and concatenated (eq. 11), the
  S2PM (three conv-BN-ReLU blocks), and the S2P2 heads predicting boundary, semantic and binary logits
  (eqs. 12-14), all returned at input resolution;
* progressive semantic injection (eq. 15): level 3 into level 2, the result into level 1, then a dense
  scene reconstruction module (DSRM), injection of the semantic features, a second DSRM;
* image fusion path (3 x 3 conv + tanh) for the fused luminance and the scene fidelity path (modality mask,
  3 x 3 conv + tanh) reconstructing the IR image and the visible luminance.

Widths the paper leaves open come from the authors' ``PSF.py``: SFEB widths 32 and 64 (7 x 7 then 3 x 3
convs with FReLU), fused widths 32, 32, 64, 64, 64, 64, semantic width 64, reconstruction width 32, SIM hidden
width 32, PSFM dense layers of four 16-channel 3 x 3 convs, 3 x 3 conv-BN-ReLU projections, channel
reduction 4 in the attention branches, ResNet-34 backbones (the paper's choice, section 4.5.5). Where paper
and code differ the paper is followed: eq. 4 adds each modality's re-weighted features to the *other*
modality, eq. 6 weights the infrared side with W, eq. 10 adds the attended features without a learned gate,
eq. 12 predicts the boundary first and eq. 13 weights the semantic features with its foreground probability,
eq. 15 applies ConvBN before the instance normalisation. The attention logits are unscaled (eq. 9 and code).
The backbone parameter names match torchvision's ResNet, so ImageNet weights (which the authors start from) load
into ``ir_branch.resnet`` and ``vi_branch.resnet``: ``backbone_weights`` names a local safetensors file of them
(``taskfuse.nn.pretrained.load_backbone``; its stem and ``fc`` are unused, as the SFEBs replace the stem).

BatchNorm after global pooling in the authors' attention branches is left out so that a batch of one trains, and
so is the BatchNorm after the scene-fidelity mask.

Size (``scripts/model_complexity.py``): 45.92 M parameters (seed 002, Table XIV: 45.9 M) and 190.9 GMACs at
640 x 480, of which 6.3 in attention products; the table's 180.86 G counts no attention products, and the
ConvBN that eq. 15 puts in front of each SIM (absent from the authors' code) adds 6.4 GMACs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from taskfuse.models.base import FusionModel, FusionOutput
from taskfuse.nn.conv import ConvBNAct
from taskfuse.nn.cross_attention import CrossAttention
from taskfuse.nn.dense import DenseBlock
from taskfuse.nn.injection import SemanticInjection
from taskfuse.nn.pretrained import load_backbone
from taskfuse.nn.resample import resize
from taskfuse.nn.resnet import ResNet

STEM_WIDTH = 64
"""Channels entering ResNet layer1 (fixed by the torchvision layout the ImageNet weights use)."""


def _upscale(x: Tensor, factor: int = 2) -> Tensor:
    return resize(x, (x.shape[-2] * factor, x.shape[-1] * factor))


class FReLU(nn.Module):
    """Funnel activation (Ma et al. 2020): ``max(x, BN(depthwise3x3(x)))``, used in the SFEBs."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.funnel = ConvBNAct(channels, channels, 3, act=None, bn=True, groups=channels)

    def forward(self, x: Tensor) -> Tensor:
        return torch.maximum(x, self.funnel(x))


class Branch(nn.Module):
    """One modality: SFEB1, SFEB2 (eqs. 1-2), max-pool and ResNet layer1-4 (eq. 3) -> [F^1, ..., F^6]."""

    def __init__(self, in_channels: int, width: int, depth: int) -> None:
        super().__init__()
        self.sfeb1 = nn.Sequential(
            ConvBNAct(in_channels, width, 7, act=None), FReLU(width), ConvBNAct(width, width, 3, act=None), FReLU(width)
        )
        self.sfeb2 = nn.Sequential(
            ConvBNAct(width, STEM_WIDTH, 3, stride=2, act=None),
            FReLU(STEM_WIDTH),
            ConvBNAct(STEM_WIDTH, STEM_WIDTH, 3, act="relu"),
        )
        self.resnet = ResNet(depth, stem=False, stem_in=STEM_WIDTH)

    def forward(self, x: Tensor) -> list[Tensor]:
        f1 = self.sfeb1(x)
        f2 = self.sfeb2(f1)
        return [f1, f2, *self.resnet(F.max_pool2d(f2, 3, 2, 1))]


class SDFM(nn.Module):
    """Superficial detail fusion module (eqs. 4-6) with three conv-BN-ReLU layers per modality in front."""

    def __init__(self, in_channels: int, channels: int, reduction: int = 4) -> None:
        super().__init__()
        c, hidden = channels, max(channels // reduction, 1)

        def pre() -> nn.Sequential:
            return nn.Sequential(ConvBNAct(in_channels, c), ConvBNAct(c, c), ConvBNAct(c, c))

        self.pre_ir, self.pre_vi = pre(), pre()
        self.cross = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(2 * c, 2 * hidden, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(2 * hidden, 2 * c, 1),
            nn.Sigmoid(),
        )
        self.squeeze = ConvBNAct(2 * c, c, 1)
        self.channel = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(c, hidden, 1), nn.ReLU(inplace=True), nn.Conv2d(hidden, c, 1)
        )
        self.spatial = nn.Sequential(ConvBNAct(c, hidden, 1), ConvBNAct(hidden, c, 1, act=None))

    def forward(self, ir: Tensor, vi: Tensor) -> Tensor:
        ir, vi = self.pre_ir(ir), self.pre_vi(vi)
        w_ir, w_vi = self.cross(torch.cat((ir, vi), 1)).chunk(2, dim=1)
        ir, vi = ir + vi * w_ir, vi + ir * w_vi
        z = self.squeeze(torch.cat((ir, vi), 1))
        w = torch.sigmoid(self.channel(z) * self.spatial(z))
        return w * ir + (1 - w) * vi


class DenseEnhance(nn.Module):
    """PSFM dense layer: 1 x 1 down to ``channels / 4``, four densely connected 3 x 3 conv-BN-ReLU layers,
    and a 3 x 3 conv-BN-ReLU over the input concatenated with the last dense output."""

    def __init__(self, in_channels: int, channels: int, layers: int = 4) -> None:
        super().__init__()
        self.mid = max(channels // 4, 1)
        self.down = nn.Conv2d(in_channels, self.mid, 1)
        self.dense = DenseBlock(self.mid, self.mid, layers=layers, act="relu", bn=True)
        self.fuse = ConvBNAct(in_channels + self.mid, channels, 3)

    def forward(self, x: Tensor) -> Tensor:
        last = self.dense(self.down(x))[:, -self.mid :]
        return self.fuse(torch.cat((x, last), 1))


class PSFM(nn.Module):
    """Profound semantic fusion module (eqs. 7-10): a modality-invariant query from both modalities attends to
    each modality's keys and values; each result is added to the other modality's features."""

    def __init__(self, in_channels: int, channels: int, reduction: int = 1) -> None:
        super().__init__()
        self.enh_ir = DenseEnhance(in_channels, channels)
        self.enh_vi = DenseEnhance(in_channels, channels)
        self.query = ConvBNAct(2 * channels, channels, 3)

        def attention() -> CrossAttention:
            return CrossAttention(
                channels,
                channels,
                channels,
                kernel_size=3,
                reduction=reduction,
                scale=1.0,
                norm_act=True,
                project_query=False,
            )

        self.att_ir, self.att_vi = attention(), attention()
        self.out = ConvBNAct(2 * channels, channels, 3)

    def forward(self, ir: Tensor, vi: Tensor) -> Tensor:
        ir, vi = self.enh_ir(ir), self.enh_vi(vi)
        q = self.query(torch.cat((ir, vi), 1))
        return self.out(torch.cat((vi + self.att_ir(q, ir), ir + self.att_vi(q, vi)), 1))


class FidelityHead(nn.Module):
    """Scene fidelity path for one modality: a modality-specific mask (local depthwise branch times global
    channel branch, sigmoid), then 3 x 3 conv and tanh mapped to [0, 1]."""

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        c, hidden = channels, max(channels // reduction, 1)
        self.local = nn.Sequential(
            ConvBNAct(c, c, 3, groups=c), ConvBNAct(c, c, 3, groups=c), ConvBNAct(c, c, 3, act=None, groups=c)
        )
        self.glob = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(c, hidden, 1), nn.ReLU(inplace=True), nn.Conv2d(hidden, c, 1)
        )
        self.out = nn.Conv2d(c, 1, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        x = x * torch.sigmoid(self.local(x) * self.glob(x))
        return torch.tanh(self.out(x)) / 2 + 0.5


class PSFusion(FusionModel):
    """PSFusion. ``aux`` holds ``semantic`` (B, num_classes, H, W), ``boundary`` and ``binary`` (B, 2, H, W)
    logits, and the scene-fidelity reconstructions ``ir_rec`` and ``vi_rec`` (B, 1, H, W; ``vi_rec`` is
    the visible luminance).

    Args:
        num_classes: semantic classes (9 for MSRS / MFNet).
        backbone_depth: ResNet depth of both branches (34 in the paper).
        width: channels of the fused levels 3-6 and of the semantic path.
        rec_width: channels of the fused levels 1-2 and of the scene reconstruction.
        attn_reduction: spatial reduction of keys/values in the PSFMs (1 = full attention as in the paper;
            2 or 4 cut the memory of the stride-8 level on large images).
        backbone_weights: optional local ``.safetensors`` ImageNet ResNet of depth ``backbone_depth`` (torchvision
            or timm naming) loaded into both branches (the paper starts from ImageNet ResNet-34).
    """

    input_mode = "rgb"
    output_mode = "y"
    stride = 32

    def __init__(
        self,
        num_classes: int = 9,
        backbone_depth: int = 34,
        width: int = 64,
        rec_width: int = 32,
        attn_reduction: int = 1,
        backbone_weights: str | None = None,
    ) -> None:
        super().__init__()
        self.ir_branch = Branch(1, rec_width, backbone_depth)
        self.vi_branch = Branch(3, rec_width, backbone_depth)
        if backbone_weights:
            for branch in (self.ir_branch, self.vi_branch):
                load_backbone(branch.resnet, backbone_weights, "resnet")
        deep = self.ir_branch.resnet.channels
        self.sdfm = nn.ModuleList([SDFM(rec_width, rec_width), SDFM(STEM_WIDTH, rec_width), SDFM(deep[0], width)])
        self.psfm = nn.ModuleList(PSFM(c, width, attn_reduction) for c in deep[1:])
        self.to_semantic = nn.ModuleList(nn.Conv2d(width, width, 3, padding=1) for _ in range(4))
        self.s2pm = nn.Sequential(ConvBNAct(4 * width, width), ConvBNAct(width, width), ConvBNAct(width, width))
        self.boundary_head = nn.Sequential(ConvBNAct(width, width // 4, 1), nn.Conv2d(width // 4, 2, 3, padding=1))
        self.semantic_feat = ConvBNAct(width, width, 1)
        self.semantic_head = nn.Conv2d(width, num_classes, 3, padding=1)
        self.binary_head = nn.Sequential(ConvBNAct(2 * width, width, 1), nn.Conv2d(width, 2, 3, padding=1))
        self.sim_2 = SemanticInjection(rec_width, width, hidden=rec_width)
        self.sim_1 = SemanticInjection(rec_width, rec_width, hidden=rec_width)
        self.dsrm_1 = DenseBlock(rec_width, rec_width, 3, act="relu", bn=True, out_channels=rec_width)
        self.sim_se = SemanticInjection(rec_width, width, hidden=rec_width)
        self.dsrm_2 = DenseBlock(rec_width, rec_width, 3, act="relu", bn=True, out_channels=rec_width)
        self.fusion_head = nn.Conv2d(rec_width, 1, 3, padding=1)
        self.ir_head = FidelityHead(rec_width)
        self.vi_head = FidelityHead(rec_width)

    def fuse(self, ir: Tensor, vi: Tensor) -> FusionOutput:
        f_ir, f_vi = self.ir_branch(ir), self.vi_branch(vi)
        fused = [m(a, b) for m, a, b in zip(self.sdfm, f_ir[:3], f_vi[:3], strict=True)]
        fused += [m(a, b) for m, a, b in zip(self.psfm, f_ir[3:], f_vi[3:], strict=True)]

        size = fused[2].shape[-2:]
        levels = [resize(conv(f), size) for conv, f in zip(self.to_semantic, fused[2:], strict=True)]
        f_se = self.s2pm(torch.cat(levels, 1))
        boundary = self.boundary_head(f_se)
        fg = torch.softmax(boundary, dim=1)[:, 1:2]
        f_se_hat = self.semantic_feat(_upscale(f_se * fg))
        semantic = self.semantic_head(f_se_hat)
        binary = self.binary_head(torch.cat((f_se_hat, _upscale(f_se)), 1))

        rec = self.sim_1(fused[0], self.sim_2(fused[1], fused[2]))
        rec = self.dsrm_2(self.sim_se(self.dsrm_1(rec), f_se))
        aux = {
            "semantic": _upscale(semantic),
            "boundary": _upscale(boundary, 4),
            "binary": _upscale(binary),
            "ir_rec": self.ir_head(rec),
            "vi_rec": self.vi_head(rec),
        }
        return FusionOutput(torch.tanh(self.fusion_head(rec)) / 2 + 0.5, aux)

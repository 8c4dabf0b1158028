"""MAFS (Wang, Zhang, Jia, Ma, IEEE TIP 2025; seed 002): one network for image fusion and segmentation.

Shared encoder (Sec. III-B, Fig. 2), per modality: shallow feature extraction (SFE, eq. 1) giving F^1 (full
resolution, C/2 channels) and F^2 (1/2, C channels); a ResNet whose four stages are each preceded by the gated
dynamic extraction module (DEM, eq. 2) giving F^3..F^6 (1/4..1/32). The shallow pairs are fused by the adaptive
fusion module (AFM, eq. 3), the deep pairs by the cross-modal attention module (CAM, spatial + channel, eq. 4),
and progressive heterogeneous fusion injects the deep F^3 into the shallow features, F^f = PHF(F^1, PHF(F^2,
F^3)) (eq. 5).

Fusion decoder (Sec. III-C, Fig. 3): F^f is split in half along channels and passed through densely connected
invertible units (eqs. 6-7, ``taskfuse.nn.invertible``), residual channel attention, a 3 x 3 conv and
tanh, giving the gray fused image; colour returns through YCbCr (``output_mode = "y"``).

Segmentation decoder (Sec. III-D, Fig. 4): an FPN pixel decoder refines F^3..F^6, a shared ASPP enlarges their
receptive field (eq. 8), and the multi-stage inverted-pyramid transformer (MST) starts from F^5 and adds the
refined maps stage by stage while upsampling (eq. 9). Its output, joined with PHF(F^2, F^3), goes through the
authors' ARM (ASPP with rates 1, 2, 4, 8) and the segmentation head. The multilabel supervision heads (Fig. 5)
predict a foreground (binary) map, an object boundary map and auxiliary semantic logits.

Stage I pretext (Sec. III-E1): ``forward_pretext`` masks 32 x 32 patches of both inputs with a random ratio and
reconstructs the visible luminance and the infrared image from F^f with a separate decoder (De_rec). F^f reads
the deep maps only through F^3, so De_rec also injects all of F^3..F^6 into F^f (as the authors' ``RecDecoder``
injects their segmentation feature); the pretext then trains the whole encoder.

Details the paper leaves open are taken from the authors' code (github.com/Abraham-Einstein/MAFS,
``MayNet_response_final.py``, ``INN_block.py``, ``util/EAEF.py``, ``Fusion_block.py``): C = 64, shallow widths
32/64, deep features reduced to 64 channels, two ResNets (one per modality; 3-channel RGB visible input), SFE with
FReLU, DEM = EAEF (Liang et al. 2023), AFM = PSFusion's SDFM, CAM = LASNet's CAM, PHF = SPADE-style injection,
five invertible units whose sub-networks are two half-instance-norm blocks, MST with 3 stages of 2-head
transposed attention. Choices made here: BatchNorm is left out after global pooling (so batch size 1 trains),
the multilabel heads are independent 1 x 1 / 3 x 3 heads, visible and infrared patches are masked
independently, and the random ratio is uniform in ``mask_ratio_range``.

``backbone_vi`` / ``backbone_ir`` keep torchvision's ResNet names: the authors start from ImageNet weights, which
``backbone_weights`` loads from a local safetensors file into both (``taskfuse.nn.pretrained.load_backbone``; the
stem and ``fc`` are not used).

Size at 640 x 480 with ResNet-152 (``scripts/model_complexity.py``): 126.5 M parameters for inference
(paper, Table XIII: 128.69 M) and 275 G multiply-adds (paper: 324.22 "GFLOPs", thop multiply-adds). The
authors' encoder also runs an ARM branch whose output their decoder never reads (about 14 G), their
transformer decoder ends with three more 64-channel 3 x 3 convs at 1/2 resolution (about 8 G), and thop also
counts normalisation and activations, which the benchmark leaves out.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from taskfuse.errors import TaskfuseError
from taskfuse.models.base import FusionModel, FusionOutput
from taskfuse.nn.aspp import ASPP
from taskfuse.nn.attention import ChannelAttention, SpatialAttention, max_over
from taskfuse.nn.conv import ConvBNAct
from taskfuse.nn.dense import DenseBlock
from taskfuse.nn.injection import SemanticInjection
from taskfuse.nn.invertible import DenseCouplingStack, HalfInstanceSubnet
from taskfuse.nn.pretrained import load_backbone
from taskfuse.nn.resample import resize
from taskfuse.nn.resnet import ResNet
from taskfuse.nn.transposed_attention import LayerNorm2d, TransposedTransformerBlock


class FReLU(nn.Module):
    """Funnel activation ``max(x, BN(dwconv3x3(x)))`` (Ma et al. 2020), used by the authors' SFE."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.funnel = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, groups=channels), nn.BatchNorm2d(channels)
        )

    def forward(self, x: Tensor) -> Tensor:
        return torch.maximum(x, self.funnel(x))


class ShallowFeatureExtraction(nn.Module):
    """SFE (eq. 1): F^1 = 7 x 7 and 3 x 3 convs at full resolution (C/2 channels); F^2 = a stride-2 conv and a
    3 x 3 conv to C channels, then BN + ReLU (the ResNet stem's normalisation in the authors' code)."""

    def __init__(self, in_channels: int, channels: int) -> None:
        super().__init__()
        half = channels // 2
        self.full = nn.Sequential(
            nn.Conv2d(in_channels, half, 7, padding=3), nn.BatchNorm2d(half), FReLU(half),
            nn.Conv2d(half, half, 3, padding=1), nn.BatchNorm2d(half), FReLU(half),
        )  # fmt: skip
        self.down = nn.Sequential(
            nn.Conv2d(half, channels, 3, 2, 1), nn.BatchNorm2d(channels), FReLU(channels),
            nn.Conv2d(channels, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU(inplace=True),
        )  # fmt: skip

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        f1 = self.full(x)
        return f1, self.down(f1)


class DynamicExtraction(nn.Module):
    """DEM: the explicit attention-enhanced fusion gate (EAEF, Liang et al. 2023, MAFS ref. [61]).

    A cross gate ``g = sigmoid(t * u_vi * u_ir)`` from the L2-normalised pooled descriptors of both modalities
    (``t`` learned, initialised to C) splits each map into a shared part ``x * g`` refined by a channel gate from
    a depth-wise 7 x 7 conv and max pooling, and a private part ``x * (1 - g)``. A two-way softmax over
    per-pixel 1 x 1 scores then mixes the infrared map into the visible branch.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.descriptor = nn.Sequential(nn.Linear(channels, 2 * channels), nn.GELU(), nn.Linear(2 * channels, channels))
        self.temperature = nn.Parameter(torch.tensor(float(channels)))
        self.dwconv = nn.Conv2d(2 * channels, 2 * channels, 7, padding=3, groups=channels)
        hidden = max(2 * channels // 16, 4)
        self.channel_gate = nn.Sequential(nn.Linear(2 * channels, hidden), nn.GELU(), nn.Linear(hidden, 2 * channels))
        self.score_vi = nn.Conv2d(channels, 1, 1)
        self.score_ir = nn.Conv2d(channels, 1, 1)

    def forward(self, vi: Tensor, ir: Tensor) -> tuple[Tensor, Tensor]:
        b, c = vi.shape[:2]
        u_vi = F.normalize(self.descriptor(vi.mean((2, 3))), dim=1)
        u_ir = F.normalize(self.descriptor(ir.mean((2, 3))), dim=1)
        cross = torch.sigmoid(self.temperature * u_vi * u_ir).view(b, c, 1, 1)
        shared_vi, shared_ir = vi * cross, ir * cross
        pooled = max_over(self.dwconv(torch.cat((shared_vi, shared_ir), 1)), (2, 3))
        gate = torch.sigmoid(self.channel_gate(pooled))
        vi = vi * (1 - cross) + shared_vi * gate[:, :c].view(b, c, 1, 1)
        ir = ir * (1 - cross) + shared_ir * gate[:, c:].view(b, c, 1, 1)
        w = torch.softmax(torch.cat((self.score_vi(vi), self.score_ir(ir)), 1), dim=1)
        return vi * w[:, :1] + ir * w[:, 1:], ir * w[:, 1:]


class AdaptiveFusion(nn.Module):
    """AFM (eq. 3, Fig. 2b): three conv + BN + ReLU per modality; the concatenation is recalibrated by channel
    weights; local (1 x 1) and global (pooled) attention of its 1 x 1 aggregation give ``w``;
    out = w * vi + (1 - w) * ir."""

    def __init__(self, in_channels: int, channels: int, reduction: int = 4) -> None:
        super().__init__()
        mid = max(channels // reduction, 8)

        def branch() -> nn.Sequential:
            return nn.Sequential(*(ConvBNAct(in_channels if i == 0 else channels, channels) for i in range(3)))

        self.vi_branch, self.ir_branch = branch(), branch()
        self.recalibrate = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(2 * channels, 2 * mid, 1), nn.ReLU(inplace=True),
            nn.Conv2d(2 * mid, 2 * channels, 1), nn.Sigmoid(),
        )  # fmt: skip
        self.aggregate = ConvBNAct(2 * channels, channels, 1)
        self.local = nn.Sequential(ConvBNAct(channels, mid, 1), nn.Conv2d(mid, channels, 1), nn.BatchNorm2d(channels))
        self.glob = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels, mid, 1), nn.ReLU(inplace=True), nn.Conv2d(mid, channels, 1)
        )

    def forward(self, vi: Tensor, ir: Tensor) -> Tensor:
        x = torch.cat((self.vi_branch(vi), self.ir_branch(ir)), 1)
        x = x + x * self.recalibrate(x)
        vi, ir = x.chunk(2, dim=1)
        agg = self.aggregate(x)
        w = torch.sigmoid(self.local(agg) * self.glob(agg))
        return w * vi + (1 - w) * ir


class CrossModalAttention(nn.Module):
    """CAM (eq. 4, Fig. 2c): ``conv(vi + ir)`` weighted by spatial attention of ``vi * ir``, then channel
    self-attention (DANet, Fu et al. 2019: ``softmax(max(E) - E)`` with E = X X^T, scaled by a learned ``gamma``
    that starts at 0)."""

    def __init__(self, in_channels: int, channels: int) -> None:
        super().__init__()
        self.summation = ConvBNAct(in_channels, channels, 3, act="lrelu")
        self.spatial = SpatialAttention(3)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, vi: Tensor, ir: Tensor) -> Tensor:
        x = self.summation(vi + ir) * self.spatial(vi * ir)
        b, c, h, w = x.shape
        flat = x.reshape(b, c, h * w)
        energy = flat @ flat.transpose(1, 2)
        attn = torch.softmax(energy.amax(-1, keepdim=True) - energy, dim=-1)
        return self.gamma * (attn @ flat).reshape(b, c, h, w) + x


class FusionDecoder(nn.Module):
    """Eqs. 6-7: dense invertible units on the two channel halves, residual channel attention, 3 x 3 conv,
    tanh mapped to [0, 1]."""

    def __init__(self, channels: int, blocks: int) -> None:
        super().__init__()
        half = channels // 2
        self.inn = DenseCouplingStack(half, channels - half, channels, blocks, HalfInstanceSubnet, scale="exp")
        self.attention = ChannelAttention(channels)
        self.out = nn.Conv2d(channels, 1, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        half = x.shape[1] // 2
        y = self.inn(x[:, :half], x[:, half:])
        y = y + y * self.attention(y)
        return (torch.tanh(self.out(y)) + 1) / 2


class PixelDecoder(nn.Module):
    """FPN (Lin et al. 2017) as MaskFormer's pixel decoder: 1 x 1 laterals, top-down sums, 3 x 3 outputs
    (eq. 8, "FPN"). Returns refined maps, each at its own size, for all levels but the coarsest, which only
    feeds the top-down path."""

    def __init__(self, channels: int, levels: int) -> None:
        super().__init__()
        self.lateral = nn.ModuleList(ConvBNAct(channels, channels, 1, act=None) for _ in range(levels))
        self.output = nn.ModuleList(ConvBNAct(channels, channels, 3) for _ in range(levels - 1))

    def forward(self, feats: list[Tensor]) -> list[Tensor]:
        top = self.lateral[-1](feats[-1])
        outs: list[Tensor] = []
        for i in reversed(range(len(feats) - 1)):
            top = self.lateral[i](feats[i]) + resize(top, feats[i].shape[-2:])
            outs.insert(0, self.output[i](top))
        return outs


def _up_embed(channels: int) -> nn.Sequential:
    """x2 bilinear upsampling, then two 3 x 3 conv + BN + ReLU (InvPT's up-embedding)."""
    return nn.Sequential(
        nn.Upsample(scale_factor=2, mode="bilinear"), ConvBNAct(channels, channels), ConvBNAct(channels, channels)
    )


class MultiStageTransformer(nn.Module):
    """MST (eq. 9): stage 0 refines F^5 + F'_5; stages 1 and 2 upsample x2 (bilinear + two conv-BN-ReLU), add
    F'_4 and F'_3 and refine. Every stage output is layer-normed, resized to the last stage's size and summed;
    a 3 x 3 conv + BN + ReLU gives F^s."""

    def __init__(self, channels: int, stages: int = 3, heads: int = 2, mlp_ratio: float = 1.0) -> None:
        super().__init__()
        self.embed = nn.ModuleList(_up_embed(channels) for _ in range(stages - 1))
        self.blocks = nn.ModuleList(TransposedTransformerBlock(channels, heads, mlp_ratio) for _ in range(stages))
        self.norms = nn.ModuleList(LayerNorm2d(channels) for _ in range(stages))
        self.project = ConvBNAct(channels, channels)

    def forward(self, x: Tensor, refined: list[Tensor]) -> Tensor:
        outs = []
        for i, (block, norm, skip) in enumerate(zip(self.blocks, self.norms, refined, strict=True)):
            if i:
                x = self.embed[i - 1](x)
            x = block(x + resize(skip, x.shape[-2:]))
            outs.append(norm(x))
        size = outs[-1].shape[-2:]
        return self.project(sum(resize(o, size) for o in outs))


class SegmentationDecoder(nn.Module):
    """Eqs. 8-9 and the heads: FPN + shared ASPP on F^3..F^6, MST from F^5, ARM on [MST, PHF(F^2, F^3)], head;
    multilabel heads for the binary (foreground), boundary and auxiliary semantic outputs."""

    def __init__(self, channels: int, shallow_channels: int, num_classes: int) -> None:
        super().__init__()
        self.pixel_decoder = PixelDecoder(channels, 4)
        self.aspp = ASPP(channels, channels, rates=(1, 2, 3, 4), image_pool=False, residual=True)
        self.mst = MultiStageTransformer(channels)
        self.arm = ASPP(channels + shallow_channels, channels, rates=(1, 2, 4, 8), conv1x1=False, image_pool=False)
        self.head = nn.Sequential(ConvBNAct(channels, channels, 1), nn.Conv2d(channels, num_classes, 3, padding=1))
        self.aux_head = nn.Sequential(ConvBNAct(channels, channels), nn.Conv2d(channels, num_classes, 1))
        quarter = channels // 4
        self.binary_head = nn.Sequential(ConvBNAct(channels, quarter, 1), nn.Conv2d(quarter, 2, 3, padding=1))
        self.boundary_head = nn.Sequential(ConvBNAct(channels, channels, 1), nn.Conv2d(channels, 2, 3, padding=1))

    def forward(self, deep: list[Tensor], shallow: Tensor, size: torch.Size) -> dict[str, Tensor]:
        pyramid = self.pixel_decoder(deep)
        refined = [self.aspp(p) for p in pyramid]
        fs = self.mst(deep[2], refined[::-1])
        feat = self.arm(torch.cat((resize(fs, shallow.shape[-2:]), shallow), 1))
        return {
            "seg": resize(self.head(feat), size),
            "seg_aux": resize(self.aux_head(fs), size),
            "binary": resize(self.binary_head(feat), size),
            "boundary": resize(self.boundary_head(feat), size),
        }


class MAFS(FusionModel):
    """MAFS with a ResNet-``depth`` backbone per modality (paper: 152) and ``num_classes`` segmentation classes.

    ``fuse`` returns the gray fused image and ``aux`` = ``seg`` (logits), ``seg_aux``, ``binary`` and
    ``boundary`` (two-class logits: background / foreground, interior / boundary), all at input size.
    ``forward_pretext`` is the stage-I masked autoencoder. ``backbone_weights`` is an optional local
    ``.safetensors`` ImageNet ResNet of depth ``depth`` (torchvision or timm naming; the paper's ResNet-152) loaded
    into both backbones; it needs ``channels`` 64, the width an ImageNet ResNet's layer1 takes.
    """

    input_mode = "rgb"
    output_mode = "y"
    stride = 32

    def __init__(
        self,
        depth: int = 152,
        num_classes: int = 9,
        channels: int = 64,
        inn_blocks: int = 5,
        mask_patch: int = 32,
        mask_ratio_range: tuple[float, float] | list[float] = (0.25, 0.75),
        backbone_weights: str | None = None,
    ) -> None:
        super().__init__()
        _eager_masks()
        lo, hi = (float(r) for r in mask_ratio_range)
        if not 0.0 <= lo <= hi <= 1.0:
            raise TaskfuseError(f"mafs: mask_ratio_range must be two ratios 0 <= lo <= hi <= 1, got {mask_ratio_range}")
        if num_classes < 2:
            raise TaskfuseError(f"mafs: num_classes must be at least 2, got {num_classes}")
        self.mask_patch = int(mask_patch)
        self.mask_ratio_range = (lo, hi)
        half = channels // 2
        self.sfe_vi = ShallowFeatureExtraction(3, channels)
        self.sfe_ir = ShallowFeatureExtraction(1, channels)
        self.backbone_vi = ResNet(depth, stem=False, stem_in=channels)
        self.backbone_ir = ResNet(depth, stem=False, stem_in=channels)
        if backbone_weights:
            for backbone in (self.backbone_vi, self.backbone_ir):
                load_backbone(backbone, backbone_weights, "resnet")
        widths = (channels, *self.backbone_vi.channels[:3])
        self.dem = nn.ModuleList(DynamicExtraction(c) for c in widths)
        self.afm1 = AdaptiveFusion(half, half)
        self.afm2 = AdaptiveFusion(channels, half)
        self.cam = nn.ModuleList(CrossModalAttention(c, channels) for c in self.backbone_vi.channels)
        self.phf2 = SemanticInjection(half, channels, hidden=half, pre_conv=False)
        self.phf1 = SemanticInjection(half, half, hidden=half, pre_conv=False)
        self.fusion_decoder = FusionDecoder(half, inn_blocks)
        self.seg_decoder = SegmentationDecoder(channels, half, num_classes)
        self.rec_context = ConvBNAct(4 * channels, channels, 1)
        self.rec_inject = SemanticInjection(half, channels, hidden=half, pre_conv=False)
        self.rec_decoder = nn.Sequential(
            DenseBlock(half, half, layers=3, act="relu", bn=True, out_channels=half), nn.Conv2d(half, 2, 3, padding=1)
        )

    def encode(self, ir: Tensor, vi: Tensor) -> tuple[Tensor, Tensor, list[Tensor]]:
        """Shared encoder: F^f (eq. 5), PHF(F^2, F^3) and the deep fused maps F^3..F^6 (eq. 4)."""
        f1_vi, x_vi = self.sfe_vi(vi)
        f1_ir, x_ir = self.sfe_ir(ir)
        f2_vi, f2_ir = x_vi, x_ir
        deep = []
        stages = zip(self.dem, self.backbone_vi.stages(), self.backbone_ir.stages(), self.cam, strict=True)
        for i, (dem, stage_vi, stage_ir, cam) in enumerate(stages):
            x_vi, x_ir = dem(x_vi, x_ir)
            if i == 0:
                x_vi, x_ir = F.max_pool2d(x_vi, 3, 2, 1), F.max_pool2d(x_ir, 3, 2, 1)
            x_vi, x_ir = stage_vi(x_vi), stage_ir(x_ir)
            deep.append(cam(x_vi, x_ir))
        shallow2 = self.phf2(self.afm2(f2_vi, f2_ir), deep[0])
        return self.phf1(self.afm1(f1_vi, f1_ir), shallow2), shallow2, deep

    def fuse(self, ir: Tensor, vi: Tensor) -> FusionOutput:
        feat, shallow2, deep = self.encode(ir, vi)
        return FusionOutput(self.fusion_decoder(feat), self.seg_decoder(deep, shallow2, ir.shape[-2:]))

    def random_mask(self, b: int, h: int, w: int, ratio: float | None, device: torch.device) -> Tensor:
        """(b, 1, h, w) with 1 on masked ``mask_patch`` squares; each sample masks round(ratio * patches) of
        them, ``ratio`` drawn uniformly from ``mask_ratio_range`` per sample when None.

        Always drawn eagerly, once a MAFS exists (``_eager_masks``): code ``torch.compile`` generates draws from a
        random generator of its own, so a compiled pretext pass would mask other patches than an eager one from
        the same seed."""
        p = self.mask_patch
        gh, gw = h // p, w // p
        n = gh * gw
        if ratio is None:
            lo, hi = self.mask_ratio_range
            ratios = lo + (hi - lo) * torch.rand(b, 1, device=device)
        else:
            ratios = torch.full((b, 1), float(ratio), device=device)
        ranks = torch.rand(b, n, device=device).argsort(1).argsort(1)
        masked = (ranks < (ratios * n).round()).float().view(b, 1, gh, gw)
        return masked.repeat_interleave(p, 2).repeat_interleave(p, 3)

    def forward_pretext(self, ir: Tensor, vi: Tensor, mask_ratio: float | None = None) -> FusionOutput:
        """Stage I (Algorithm 1, lines 1-8): mask both inputs, reconstruct them from F^f.

        ``vi`` is RGB (or luminance, repeated); H and W must be multiples of ``mask_patch`` and of 32.
        Returns ``fused`` = reconstructed visible luminance and ``aux`` = ``recon_vi``, ``recon_ir``,
        ``mask_vi``, ``mask_ir`` (1 on masked pixels).
        """
        h, w = ir.shape[-2:]
        if h % self.mask_patch or w % self.mask_patch or h % self.stride or w % self.stride:
            raise TaskfuseError(
                f"mafs pretext: image size {h}x{w} must be a multiple of {max(self.mask_patch, self.stride)}; "
                "crop training patches accordingly (the paper uses 256 x 256)"
            )
        if vi.shape[1] == 1:
            vi = vi.expand(-1, 3, -1, -1)
        mask_vi = self.random_mask(ir.shape[0], h, w, mask_ratio, ir.device)
        mask_ir = self.random_mask(ir.shape[0], h, w, mask_ratio, ir.device)
        feat, _, deep = self.encode(ir * (1 - mask_ir), vi * (1 - mask_vi))
        context = self.rec_context(torch.cat([resize(d, deep[0].shape[-2:]) for d in deep], 1))
        rec = (torch.tanh(self.rec_decoder(self.rec_inject(feat, context))) + 1) / 2
        aux = {"recon_vi": rec[:, :1], "recon_ir": rec[:, 1:], "mask_vi": mask_vi, "mask_ir": mask_ir}
        return FusionOutput(rec[:, :1], aux)


@functools.cache
def _eager_masks() -> None:
    """Leave ``MAFS.random_mask`` out of ``torch.compile``'s graphs (``torch.compiler.disable``), done when the first
    MAFS is made rather than at import: the decorator imports torch's compiler, 3.4 s of a fresh ``taskfuse fuse``
    on an H100 host (``python -X importtime``), which commands without MAFS would pay for nothing."""
    MAFS.random_mask = torch.compiler.disable(MAFS.random_mask)  # type: ignore[method-assign]

"""YOLOX (Ge et al. 2021, arXiv 2107.08430): an anchor-free one-stage detector in plain PyTorch.

Backbone: the modified CSPNet of YOLOv5 with a Focus stem and SPP (Sec. 2.2 "Modified CSPNet in YOLOv5"),
scaled by a depth and a width multiplier; YOLOX-Nano swaps the 3x3 convolutions for depthwise-separable ones
(Sec. 2.2 "Tiny and Nano detectors"). Neck: PAFPN giving strides 8, 16 and 32. Head: the decoupled head of
Sec. 2.1 (Fig. 2): per level a 1x1 stem to ``256 * width`` channels, then a classification branch and a
regression branch of two 3x3 convolutions each, the latter also predicting objectness. Anchor-free ("Anchor-free",
Sec. 2.1): each feature cell predicts the box centre as an offset from the cell's top-left corner and the log of
its width and height, both in units of the level's stride.

Backbones: the CSPDarknet above, or EfficientNet-Lite0/1/2 (``taskfuse.nn.efficientnet``; the variants
``yolox-{nano,tiny,s}-effnet-lite{0,1,2}``), whose stride 8, 16 and 32 stage outputs (40, 112, 320 channels for
Lite0) enter the same PAFPN; the PAFPN's lateral and merge layers take the backbone's widths, its own widths stay
those of the YOLOX size. Only the EfficientNet-Lite backbones take ImageNet weights (``backbone_arch``; loaded by
``taskfuse.nn.pretrained.load_network_backbone``, e.g. ``"imagenet"`` with ``taskfuse[pretrained]``).

Modules are named as in the official implementation (``backbone.backbone.dark3``, ``head.cls_preds``...), so
that its checkpoints' parameter names line up with ours. Initialisation follows its ``init_yolo`` and
``initialize_biases``: BatchNorm eps 1e-3 and momentum 0.03, class and objectness biases set to the prior
probability 0.01.

>>> det = YOLOX(num_classes=6, depth=0.33, width=0.5)
>>> out = det(images)                      # DetectionOutput, images already normalised, any H, W
>>> det.loss(out, targets).total           # targets: list of (M, 5) [class, x1, y1, x2, y2] in pixels
>>> det.predict(out)                       # list of (N, 6) [x1, y1, x2, y2, score, class]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from taskfuse.errors import TaskfuseError
from taskfuse.losses.base import LossTerms
from taskfuse.nn.efficientnet import VARIANTS as LITE_VARIANTS
from taskfuse.nn.efficientnet import EfficientNetLite
from taskfuse.tasks.detection.base import DETECTORS, DetectionOutput
from taskfuse.tasks.detection.loss import BOX_LOSSES, yolox_loss
from taskfuse.tasks.detection.nms import batched_nms

STRIDES = (8, 16, 32)
PRIOR_PROB = 0.01


class BaseConv(nn.Module):
    """Convolution (no bias), BatchNorm, SiLU."""

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, groups: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.act = nn.SiLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.bn(self.conv(x)))


class DWConv(nn.Module):
    """Depthwise k x k convolution then pointwise 1x1, each with BatchNorm and SiLU (YOLOX-Nano)."""

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1) -> None:
        super().__init__()
        self.dconv = BaseConv(cin, cin, k, stride, groups=cin)
        self.pconv = BaseConv(cin, cout, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.pconv(self.dconv(x))


def conv3(cin: int, cout: int, stride: int, depthwise: bool) -> nn.Module:
    """The 3x3 convolution of every block: plain, or depthwise-separable in YOLOX-Nano."""
    return DWConv(cin, cout, 3, stride) if depthwise else BaseConv(cin, cout, 3, stride)


class Bottleneck(nn.Module):
    """1x1 then 3x3 convolution, with a residual connection when ``shortcut`` and the widths agree."""

    def __init__(self, cin: int, cout: int, shortcut: bool, depthwise: bool) -> None:
        super().__init__()
        self.conv1 = BaseConv(cin, cout, 1)
        self.conv2 = conv3(cout, cout, 1, depthwise)
        self.use_add = shortcut and cin == cout

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv2(self.conv1(x))
        return x + y if self.use_add else y


class CSPLayer(nn.Module):
    """Cross-stage partial block (YOLOv5's C3): half the width goes through ``n`` bottlenecks, half bypasses
    them; the two halves are concatenated and mixed by a 1x1 convolution."""

    def __init__(self, cin: int, cout: int, n: int, shortcut: bool, depthwise: bool) -> None:
        super().__init__()
        hidden = cout // 2
        self.conv1 = BaseConv(cin, hidden, 1)
        self.conv2 = BaseConv(cin, hidden, 1)
        self.conv3 = BaseConv(2 * hidden, cout, 1)
        self.m = nn.Sequential(*(Bottleneck(hidden, hidden, shortcut, depthwise) for _ in range(n)))

    def forward(self, x: Tensor) -> Tensor:
        return self.conv3(torch.cat([self.m(self.conv1(x)), self.conv2(x)], 1))


class SPPBottleneck(nn.Module):
    """Spatial pyramid pooling: max-pools of size 5, 9 and 13 (stride 1) concatenated with their input."""

    def __init__(self, cin: int, cout: int, sizes: Sequence[int] = (5, 9, 13)) -> None:
        super().__init__()
        hidden = cin // 2
        self.conv1 = BaseConv(cin, hidden, 1)
        self.m = nn.ModuleList(nn.MaxPool2d(k, 1, k // 2) for k in sizes)
        self.conv2 = BaseConv(hidden * (len(sizes) + 1), cout, 1)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv1(x)
        return self.conv2(torch.cat([x, *(pool(x) for pool in self.m)], 1))


class Focus(nn.Module):
    """Space-to-depth stem: the four pixel phases of every 2x2 block stacked on channels, then a 3x3 conv."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = BaseConv(4 * cin, cout, 3)

    def forward(self, x: Tensor) -> Tensor:
        phases = (x[..., ::2, ::2], x[..., 1::2, ::2], x[..., ::2, 1::2], x[..., 1::2, 1::2])
        return self.conv(torch.cat(phases, 1))


class CSPDarknet(nn.Module):
    """The YOLOv5/YOLOX backbone; returns the stride 8, 16 and 32 features (``dark3``, ``dark4``, ``dark5``)."""

    def __init__(self, depth: float, width: float, in_chans: int, depthwise: bool) -> None:
        super().__init__()
        c = int(width * 64)
        n = max(round(depth * 3), 1)
        self.stem = Focus(in_chans, c)
        self.dark2 = nn.Sequential(conv3(c, 2 * c, 2, depthwise), CSPLayer(2 * c, 2 * c, n, True, depthwise))
        self.dark3 = nn.Sequential(conv3(2 * c, 4 * c, 2, depthwise), CSPLayer(4 * c, 4 * c, 3 * n, True, depthwise))
        self.dark4 = nn.Sequential(conv3(4 * c, 8 * c, 2, depthwise), CSPLayer(8 * c, 8 * c, 3 * n, True, depthwise))
        self.dark5 = nn.Sequential(
            conv3(8 * c, 16 * c, 2, depthwise),
            SPPBottleneck(16 * c, 16 * c),
            CSPLayer(16 * c, 16 * c, n, False, depthwise),
        )

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        c3 = self.dark3(self.dark2(self.stem(x)))
        c4 = self.dark4(c3)
        return c3, c4, self.dark5(c4)


BACKBONES = ("cspdarknet", *(f"efficientnet-{v}" for v in LITE_VARIANTS))


class PAFPN(nn.Module):
    """Top-down then bottom-up feature pyramid (PANet) over the backbone's three outputs; widths
    ``256, 512, 1024`` times ``width`` at strides 8, 16, 32. ``backbone`` is one of ``BACKBONES``."""

    def __init__(
        self, depth: float, width: float, in_chans: int, depthwise: bool, backbone: str = "cspdarknet"
    ) -> None:
        super().__init__()
        if backbone not in BACKBONES:
            raise TaskfuseError(f"YOLOX backbone {backbone!r} is not one of {', '.join(BACKBONES)}")
        c3, c4, c5 = (int(c * width) for c in (256, 512, 1024))
        n = round(3 * depth)
        if backbone == "cspdarknet":
            self.backbone: nn.Module = CSPDarknet(depth, width, in_chans, depthwise)
            b3, b4, b5 = c3, c4, c5
        else:
            self.backbone = EfficientNetLite(backbone.removeprefix("efficientnet-"), in_chans)
            b3, b4, b5 = self.backbone.channels[-3:]
        self.lateral_conv0 = BaseConv(b5, c4, 1)
        self.C3_p4 = CSPLayer(c4 + b4, c4, n, False, depthwise)
        self.reduce_conv1 = BaseConv(c4, c3, 1)
        self.C3_p3 = CSPLayer(c3 + b3, c3, n, False, depthwise)
        self.bu_conv2 = conv3(c3, c3, 2, depthwise)
        self.C3_n3 = CSPLayer(2 * c3, c4, n, False, depthwise)
        self.bu_conv1 = conv3(c4, c4, 2, depthwise)
        self.C3_n4 = CSPLayer(2 * c4, c5, n, False, depthwise)
        self.out_channels = (c3, c4, c5)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        x3, x4, x5 = self.backbone(x)[-3:]
        top5 = self.lateral_conv0(x5)
        p4 = self.C3_p4(torch.cat([F.interpolate(top5, scale_factor=2.0, mode="nearest"), x4], 1))
        top4 = self.reduce_conv1(p4)
        out3 = self.C3_p3(torch.cat([F.interpolate(top4, scale_factor=2.0, mode="nearest"), x3], 1))
        out4 = self.C3_n3(torch.cat([self.bu_conv2(out3), top4], 1))
        out5 = self.C3_n4(torch.cat([self.bu_conv1(out4), top5], 1))
        return out3, out4, out5


class DecoupledHead(nn.Module):
    """Sec. 2.1 "Decoupled head": per level, a 1x1 stem, then separate classification and regression
    branches; box (4) and objectness (1) come from the regression branch, class logits from the other."""

    def __init__(self, num_classes: int, in_channels: Sequence[int], width: float, depthwise: bool) -> None:
        super().__init__()
        c = int(256 * width)
        self.stems = nn.ModuleList(BaseConv(cin, c, 1) for cin in in_channels)
        self.cls_convs = nn.ModuleList(
            nn.Sequential(conv3(c, c, 1, depthwise), conv3(c, c, 1, depthwise)) for _ in in_channels
        )
        self.reg_convs = nn.ModuleList(
            nn.Sequential(conv3(c, c, 1, depthwise), conv3(c, c, 1, depthwise)) for _ in in_channels
        )
        self.cls_preds = nn.ModuleList(nn.Conv2d(c, num_classes, 1) for _ in in_channels)
        self.reg_preds = nn.ModuleList(nn.Conv2d(c, 4, 1) for _ in in_channels)
        self.obj_preds = nn.ModuleList(nn.Conv2d(c, 1, 1) for _ in in_channels)
        prior_bias = -math.log((1 - PRIOR_PROB) / PRIOR_PROB)
        for conv in (*self.cls_preds, *self.obj_preds):
            nn.init.constant_(conv.bias, prior_bias)

    def forward(self, feats: Sequence[Tensor]) -> list[tuple[Tensor, Tensor, Tensor]]:
        """Per level (reg (B, 4, h, w), obj (B, 1, h, w), cls (B, C, h, w))."""
        out = []
        for i, x in enumerate(feats):
            x = self.stems[i](x)
            reg_feat = self.reg_convs[i](x)
            out.append(
                (self.reg_preds[i](reg_feat), self.obj_preds[i](reg_feat), self.cls_preds[i](self.cls_convs[i](x)))
            )
        return out


class YOLOX(nn.Module):
    """CSPDarknet + PAFPN + decoupled head, at a depth and width multiplier.

    ``forward`` pads the input at the bottom and right with zeros (the mean of a normalised image) up to a
    multiple of 32 and returns a ``DetectionOutput``; boxes stay in the unpadded input's pixels. ``box_loss``
    is ``"iou"`` (1 - IoU^2, YOLOX's default) or ``"giou"``. ``backbone`` is one of ``BACKBONES``;
    ``backbone_arch`` and ``backbone_path`` tell ``taskfuse.nn.pretrained`` where ImageNet weights go (an
    EfficientNet-Lite backbone only).
    """

    backbone_path = "backbone.backbone"

    def __init__(
        self,
        num_classes: int,
        in_chans: int = 3,
        depth: float = 0.33,
        width: float = 0.5,
        depthwise: bool = False,
        box_loss: str = "iou",
        backbone: str = "cspdarknet",
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise TaskfuseError(f"num_classes must be at least 1, got {num_classes}")
        if in_chans < 1:
            raise TaskfuseError(f"in_chans must be at least 1, got {in_chans}")
        if box_loss not in BOX_LOSSES:
            raise TaskfuseError(f"box_loss {box_loss!r} is not known; use one of {', '.join(BOX_LOSSES)}")
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.box_loss = box_loss
        self.backbone_arch = "" if backbone == "cspdarknet" else "efficientnet-lite"
        self.backbone = PAFPN(depth, width, in_chans, depthwise, backbone)
        self.head = DecoupledHead(num_classes, self.backbone.out_channels, width, depthwise)
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eps, m.momentum = 1e-3, 0.03

    def forward(self, x: Tensor) -> DetectionOutput:
        if x.dim() != 4 or x.shape[1] != self.in_chans:
            raise TaskfuseError(
                f"YOLOX expects (B, {self.in_chans}, H, W), got {tuple(x.shape)}; "
                f"build it with in_chans={x.shape[1] if x.dim() == 4 else '...'} or convert the images"
            )
        h, w = x.shape[-2:]
        x = F.pad(x, (0, (-w) % STRIDES[-1], 0, (-h) % STRIDES[-1]))
        levels = self.head(self.backbone(x))
        grids, strides = [], []
        for (reg, _, _), stride in zip(levels, STRIDES, strict=True):
            gh, gw = reg.shape[-2:]
            ys, xs = torch.meshgrid(torch.arange(gh, device=x.device), torch.arange(gw, device=x.device), indexing="ij")
            grids.append(torch.stack([xs, ys], -1).reshape(-1, 2))
            strides.append(torch.full((gh * gw,), float(stride), device=x.device))

        def flat(i: int) -> Tensor:
            return torch.cat([lv[i].flatten(2) for lv in levels], 2).transpose(1, 2)

        return DetectionOutput(
            reg=flat(0),
            obj=flat(1).squeeze(-1),
            cls=flat(2),
            grid=torch.cat(grids).float(),
            strides=torch.cat(strides),
            image_size=(int(h), int(w)),
        )

    def loss(self, out: DetectionOutput, targets: Sequence[Tensor]) -> LossTerms:
        """YOLOX training loss of ``out`` against ``targets[i]`` (M, 5) ``[class, x1, y1, x2, y2]`` pixels."""
        return yolox_loss(out, targets, self.num_classes, self.box_loss)

    @torch.no_grad()
    def predict(
        self, out: DetectionOutput, score_thresh: float = 0.01, iou_thresh: float = 0.65, max_dets: int = 100
    ) -> list[Tensor]:
        """Per image (N, 6) ``[x1, y1, x2, y2, score, class]`` float32, by descending score.

        Score = sigmoid(objectness) x sigmoid(best class logit), one class per anchor point, as in the YOLOX
        post-processing; points below ``score_thresh`` are dropped, then class-wise NMS at ``iou_thresh``, the
        ``max_dets`` best are kept and boxes are clipped to the image.
        """
        h, w = out.image_size
        boxes = out.boxes()
        xyxy = torch.cat([boxes[..., :2] - boxes[..., 2:] / 2, boxes[..., :2] + boxes[..., 2:] / 2], -1)
        cls_prob, cls_idx = out.cls.float().sigmoid().max(-1)
        scores = out.obj.float().sigmoid() * cls_prob
        results = []
        for b in range(xyxy.shape[0]):
            keep = scores[b] >= score_thresh
            bx, sc, cl = xyxy[b][keep], scores[b][keep], cls_idx[b][keep]
            kept = batched_nms(bx, sc, cl, iou_thresh)[:max_dets]
            bx = bx[kept]
            bx[:, 0::2] = bx[:, 0::2].clamp(0, w)
            bx[:, 1::2] = bx[:, 1::2].clamp(0, h)
            results.append(torch.cat([bx, sc[kept, None], cl[kept, None].float()], 1))
        return results


VARIANTS: dict[str, dict[str, Any]] = {
    "yolox-nano": {"depth": 0.33, "width": 0.25, "depthwise": True},
    "yolox-tiny": {"depth": 0.33, "width": 0.375, "depthwise": False},
    "yolox-s": {"depth": 0.33, "width": 0.50, "depthwise": False},
}
"""Depth and width multipliers of the official experiment files (``exps/default/yolox_{nano,tiny,s}.py``)."""


def _variant(name: str, backbone: str = "cspdarknet") -> Any:
    def build(num_classes: int, in_chans: int = 3, **kw: Any) -> YOLOX:
        return YOLOX(num_classes, in_chans, **{**VARIANTS[name], "backbone": backbone, **kw})

    build.__doc__ = f"{name}: YOLOX with {VARIANTS[name]} on the {backbone} backbone."
    return build


for _name in VARIANTS:
    DETECTORS.register(_name)(_variant(_name))
    for _lite in LITE_VARIANTS:
        DETECTORS.register(f"{_name}-effnet-{_lite}")(_variant(_name, f"efficientnet-{_lite}"))

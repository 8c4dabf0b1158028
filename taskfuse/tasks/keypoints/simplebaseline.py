"""SimpleBaseline (Xiao, Wu and Wei, "Simple Baselines for Human Pose Estimation and Tracking", ECCV 2018).

A ResNet backbone, then three 4x4 transposed convolutions of stride 2 (256 channels, BN, ReLU; padding 1, so each
exactly doubles the size) and a 1x1 convolution to one heatmap per keypoint: heatmaps at 1/4 of the input
(§2 of the paper). Initialisation follows the authors' code: transposed and head convolutions drawn from
N(0, 0.001²), head bias 0, BN weight 1 and bias 0; the backbone keeps He initialisation unless ImageNet weights
are loaded into it (``backbone_arch``, ``taskfuse.nn.pretrained.load_network_backbone``; the authors start from
ImageNet ResNets). ``backbone`` is a ResNet (``resnet18`` ... ``resnet152``) or an EfficientNet-Lite
(``efficientnet-lite0/1/2``, ``taskfuse.nn.efficientnet``, whose stride-32 output has 320 or 352 channels); the
deconvolutions read its stride-32 features.

Inputs of any size whose sides are multiples of 4 are accepted: the input is padded to a multiple of 32 (the
backbone's stride) and the heatmaps are cropped back to (H / 4, W / 4), so heatmap pixel (i, j) covers input
pixels [4i, 4i + 4) x [4j, 4j + 4).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from taskfuse.errors import TaskfuseError
from taskfuse.nn import ResNet
from taskfuse.nn.efficientnet import VARIANTS as LITE_VARIANTS
from taskfuse.nn.efficientnet import EfficientNetLite
from taskfuse.nn.resample import pad_to_multiple
from taskfuse.tasks.keypoints.base import KEYPOINT_NETS

BACKBONES = (*(f"resnet{d}" for d in (18, 34, 50, 101, 152)), *(f"efficientnet-{v}" for v in LITE_VARIANTS))


class SimpleBaseline(nn.Module):
    """``backbone`` (one of ``BACKBONES``) + three deconvolutions + 1x1 head; ``forward`` maps
    (B, in_chans, H, W) to heatmaps (B, num_keypoints, H / 4, W / 4)."""

    stride = 4
    backbone_path = "backbone"

    def __init__(
        self, num_keypoints: int, in_chans: int = 3, backbone: str = "resnet18", deconv_channels: int = 256
    ) -> None:
        super().__init__()
        if num_keypoints < 1:
            raise TaskfuseError(f"num_keypoints must be at least 1, got {num_keypoints}")
        if in_chans < 1:
            raise TaskfuseError(f"in_chans must be at least 1, got {in_chans}")
        if backbone not in BACKBONES:
            raise TaskfuseError(f"SimpleBaseline backbone {backbone!r} is not one of {', '.join(BACKBONES)}")
        self.num_keypoints = num_keypoints
        self.in_chans = in_chans
        if backbone.startswith("resnet"):
            self.backbone: nn.Module = ResNet(int(backbone.removeprefix("resnet")), in_chans)
            self.backbone_arch = "resnet"
        else:
            self.backbone = EfficientNetLite(backbone.removeprefix("efficientnet-"), in_chans)
            self.backbone_arch = "efficientnet-lite"
        layers: list[nn.Module] = []
        cin = self.backbone.channels[-1]
        for _ in range(3):
            layers += [
                nn.ConvTranspose2d(cin, deconv_channels, 4, 2, 1, bias=False),
                nn.BatchNorm2d(deconv_channels),
                nn.ReLU(inplace=True),
            ]
            cin = deconv_channels
        self.deconv = nn.Sequential(*layers)
        self.head = nn.Conv2d(deconv_channels, num_keypoints, 1)
        for m in self.deconv.modules():
            if isinstance(m, nn.ConvTranspose2d):
                nn.init.normal_(m.weight, std=0.001)
        nn.init.normal_(self.head.weight, std=0.001)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_chans:
            raise TaskfuseError(
                f"SimpleBaseline expects (B, {self.in_chans}, H, W) crops, got {tuple(x.shape)}; build it with "
                f"in_chans={x.shape[1] if x.dim() == 4 else '...'}"
            )
        h, w = x.shape[-2:]
        if h % self.stride or w % self.stride:
            raise TaskfuseError(f"SimpleBaseline input {h}x{w}: height and width must be multiples of {self.stride}")
        feats = self.backbone(pad_to_multiple(x, 32))[-1]
        return self.head(self.deconv(feats))[..., : h // self.stride, : w // self.stride]


def _variant(backbone: str) -> Any:
    def build(num_keypoints: int, in_chans: int = 3, **kw: Any) -> SimpleBaseline:
        return SimpleBaseline(num_keypoints, in_chans, backbone, **kw)

    build.__doc__ = f"SimpleBaseline on {backbone}."
    return build


for _name, _backbone in {
    "simplebaseline-r18": "resnet18",
    "simplebaseline-r50": "resnet50",
    **{f"simplebaseline-effnet-{v}": f"efficientnet-{v}" for v in LITE_VARIANTS},
}.items():
    KEYPOINT_NETS.register(_name)(_variant(_backbone))

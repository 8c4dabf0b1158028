"""ResNet-18/34/50/101/152 (He et al. 2016) in plain PyTorch, returning the feature map of every stage.

Parameter names follow torchvision's ResNet (``conv1``, ``bn1``, ``layer1.0.conv1`` ...), so an ImageNet
checkpoint converted to safetensors loads with ``load_state_dict(strict=False)`` (the ``fc`` head is absent).
``in_chans`` other than 3 changes only ``conv1``. ``stem=False`` drops conv1/bn1/maxpool, for methods such as
PSFusion that put their own modality-specific superficial blocks in front of the stages. ``output_stride`` 16 or 8
replaces the stride of the last one or two stages by dilation, as torchvision's ``replace_stride_with_dilation``
(the first block of a dilated stage keeps the previous dilation), for DeepLab-style segmenters.
"""

from __future__ import annotations

from torch import Tensor, nn

_DEPTHS: dict[int, tuple[str, tuple[int, int, int, int]]] = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, width: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        cout = width * self.expansion
        self.conv1 = nn.Conv2d(cin, width, 3, stride, dilation, dilation, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, cout, 3, 1, dilation, dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(cin, cout, stride)

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + (self.downsample(x) if self.downsample is not None else x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, width: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        cout = width * self.expansion
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, dilation, dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(cin, cout, stride)

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + (self.downsample(x) if self.downsample is not None else x))


def _shortcut(cin: int, cout: int, stride: int) -> nn.Module | None:
    if stride == 1 and cin == cout:
        return None
    return nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))


class ResNet(nn.Module):
    """Backbone returning ``[c1, c2, c3, c4]`` from layer1..layer4 (strides 4, 8, 16, 32 with the stem).

    ``channels`` lists their widths: (64, 128, 256, 512) for 18/34, (256, 512, 1024, 2048) for 50+.
    ``stem_in`` sets the channels entering layer1 when ``stem=False`` (default 64).
    """

    def __init__(
        self, depth: int = 18, in_chans: int = 3, stem: bool = True, stem_in: int = 64, output_stride: int = 32
    ) -> None:
        super().__init__()
        if depth not in _DEPTHS:
            raise ValueError(f"ResNet depth {depth} is not one of {sorted(_DEPTHS)}")
        if output_stride not in (8, 16, 32):
            raise ValueError(f"ResNet output_stride {output_stride} is not one of 8, 16, 32")
        kind, layers = _DEPTHS[depth]
        block = BasicBlock if kind == "basic" else Bottleneck
        self.depth = depth
        self.has_stem = stem
        if stem:
            self.conv1 = nn.Conv2d(in_chans, 64, 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = 64 if stem else stem_in
        stages = []
        dilation = 1
        for i, n in enumerate(layers):
            width = 64 * 2**i
            stride, first_dilation = (2 if i > 0 else 1), dilation
            if i > 0 and 4 * 2**i > output_stride:
                dilation, stride = dilation * 2, 1
            blocks = []
            for j in range(n):
                blocks.append(block(cin, width, stride if j == 0 else 1, first_dilation if j == 0 else dilation))
                cin = width * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.channels = tuple(64 * 2**i * block.expansion for i in range(4))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def stages(self) -> list[nn.Module]:
        return [self.layer1, self.layer2, self.layer3, self.layer4]

    def forward_stem(self, x: Tensor) -> Tensor:
        return self.maxpool(self.relu(self.bn1(self.conv1(x)))) if self.has_stem else x

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.forward_stem(x)
        feats = []
        for stage in self.stages():
            x = stage(x)
            feats.append(x)
        return feats

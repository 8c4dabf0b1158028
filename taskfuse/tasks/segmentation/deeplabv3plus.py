"""DeepLabV3+ (Chen et al., ECCV 2018) on ``taskfuse.nn.ResNet`` 50/101.

Encoder: ResNet at output stride 16 (the last stage's stride replaced by dilation 2; 8 dilates the last two
stages) and ASPP (DeepLabV3, Chen et al. 2017, Sec. 3.3): a 1x1 conv, three 3x3 atrous convs at rates 6, 12, 18
(doubled at output stride 8) and image-level pooling (global average, 1x1 conv, broadcast back), each 256
channels with BN + ReLU, concatenated and projected by a 1x1 conv to 256. Decoder (DeepLabV3+ Sec. 3.1, Fig. 2):
the low-level ``layer1`` features (stride 4) are projected to 48 channels by a 1x1 conv (Sec. 4.1, Table 1),
concatenated with the 4x upsampled ASPP output, refined by two 3x3 convs of 256 (Sec. 4.1, Table 2), dropout 0.1
(mmseg's head default) and a 1x1 classifier; the stride-4 logits are upsampled bilinearly to the input. ASPP and
decoder use plain 3x3 convolutions (the paper makes them depthwise-separable with its Xception backbone); with
them R101 has the ~59 M parameters usually quoted for DeepLabV3+ R101. The image-pooling branch has BatchNorm on a
1x1 map, so training needs a batch of at least 2.

``backbone.*`` follows torchvision's ResNet names: ``load_pretrained`` accepts an ImageNet torchvision or timm
ResNet converted to safetensors (its bare ``conv1.weight``, ``layer1.0.conv1.weight`` ... load into ``backbone``,
``fc`` unused).
"""

from __future__ import annotations

from functools import partial

import torch
from torch import Tensor, nn

from taskfuse.nn import ConvBNAct, ResNet
from taskfuse.nn.aspp import ASPP
from taskfuse.nn.resample import resize
from taskfuse.tasks.segmentation.base import SEGMENTERS, SegmentationOutput, Segmenter


class DeepLabV3Plus(Segmenter):
    """DeepLabV3+ with a ResNet-``depth`` backbone; see the module docstring."""

    classifier_prefixes = ("classifier.",)
    backbone_arch = "resnet"

    def __init__(
        self,
        depth: int = 101,
        num_classes: int = 9,
        in_chans: int = 3,
        output_stride: int = 16,
        dropout: float = 0.1,
        normalize: bool = False,
    ) -> None:
        super().__init__(num_classes, in_chans, stride=output_stride, normalize=normalize)
        self.backbone = ResNet(depth, in_chans, output_stride=output_stride)
        low, high = self.backbone.channels[0], self.backbone.channels[3]
        self.aspp = ASPP(high, 256, tuple(r * 16 // output_stride for r in (6, 12, 18)))
        self.low_proj = ConvBNAct(low, 48, 1)
        self.fuse = nn.Sequential(ConvBNAct(256 + 48, 256, 3), ConvBNAct(256, 256, 3))
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(256, num_classes, 1)

    def segment(self, x: Tensor) -> SegmentationOutput:
        c1, _, _, c4 = self.backbone(x)
        y = resize(self.aspp(c4), c1.shape[-2:])
        y = self.fuse(torch.cat((y, self.low_proj(c1)), 1))
        return SegmentationOutput(resize(self.classifier(self.dropout(y)), x.shape[-2:]))


SEGMENTERS.register("deeplabv3plus-r50")(partial(DeepLabV3Plus, 50))
SEGMENTERS.register("deeplabv3plus-r101")(partial(DeepLabV3Plus, 101))

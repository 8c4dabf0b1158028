"""Building blocks shared by the fusion networks (one file per family)."""

from taskfuse.nn.attention import ChannelAttention, SpatialAttention, max_over
from taskfuse.nn.conv import ConvBNAct, make_act
from taskfuse.nn.efficientnet import EfficientNetLite
from taskfuse.nn.resnet import ResNet
from taskfuse.nn.sobel import LearnedSobel, Sobel, sobel_abs, sobel_xy

__all__ = [
    "ChannelAttention",
    "ConvBNAct",
    "EfficientNetLite",
    "LearnedSobel",
    "ResNet",
    "Sobel",
    "SpatialAttention",
    "make_act",
    "max_over",
    "sobel_abs",
    "sobel_xy",
]

"""Building blocks shared by the fusion networks (one file per family)."""

from taskfuse.models.blocks.attention import ChannelAttention, SpatialAttention
from taskfuse.models.blocks.conv import ConvBNAct, make_act
from taskfuse.models.blocks.resnet import ResNet
from taskfuse.models.blocks.sobel import Sobel, sobel_abs, sobel_xy

__all__ = ["ChannelAttention", "ConvBNAct", "ResNet", "Sobel", "SpatialAttention", "make_act", "sobel_abs", "sobel_xy"]

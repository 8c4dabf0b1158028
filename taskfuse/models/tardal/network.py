"""TarDAL's generator (Liu et al., "Target-aware Dual Adversarial Learning and a Multi-scenario Multi-Modality
Benchmark to Fuse Infrared and Visible for Object Detection", CVPR 2022).

The fusion network of TarDAL is one generator trained against two discriminators (a target discriminator on
the IR-salient regions, a detail discriminator on gradients) and, in the cooperative variants, a detector. At
inference only the generator runs: IR and the visible gray image, concatenated, go through a 3 x 3 conv stem
and a dense block of ``depth`` 3 x 3 convs (each sees the concatenation of the stem output and all earlier
outputs), then four 3 x 3 convs reconstruct one channel (``4 dim -> 2 dim -> dim -> 1``, the last one tanh).
Every conv except the first of the reconstructor and the last is followed by BatchNorm, all by ReLU. Widths
and layer order follow the authors' ``modules/generator.py`` (dim 32, depth 3: 0.30 M parameters,
91 GMACs at 640 x 480).

The authors' released weights convert with ``taskfuse convert tardal-official`` / ``tardalpp-official``
(``taskfuse.models.tardal.convert``), which store the inference settings of each release.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from taskfuse.data.color import luminance, recombine
from taskfuse.errors import TaskfuseError
from taskfuse.models.base import FusionModel, FusionOutput

BATCHNORM = ("running", "batch")
COLOR = ("ycbcr", "official")


class ImageStatsNorm2d(nn.BatchNorm2d):
    """BatchNorm that normalises with each image's own statistics outside training too.

    Training is plain BatchNorm (batch statistics, running averages updated). In evaluation every image is
    normalised by its own per-channel mean and (biased) variance, with the layer's affine weight and bias:
    what BatchNorm in training mode does to a batch of one image, without touching the running averages.
    This is how the authors run ``tardal.pt``.
    """

    def forward(self, x: Tensor) -> Tensor:
        if self.training:
            return super().forward(x)
        return F.instance_norm(x, weight=self.weight, bias=self.bias, eps=self.eps)


def _conv(cin: int, cout: int, norm: type[nn.BatchNorm2d] | None, act: nn.Module) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, 3, padding=1)]
    if norm is not None:
        layers.append(norm(cout))
    return nn.Sequential(*layers, act)


def opencv_gray(vi: Tensor) -> Tensor:
    """(B, 3, H, W) RGB in [0, 1] -> (B, 1, H, W) gray as the authors make it: OpenCV's 8-bit
    ``cvtColor(..., COLOR_BGR2GRAY)`` (fixed-point BT.601) of the 8-bit image, divided by 255.
    Runs on the CPU (OpenCV) and returns to ``vi``'s device."""
    images = _to_uint8(vi)
    gray = np.stack([cv2.cvtColor(im, cv2.COLOR_RGB2GRAY) for im in images])
    return torch.from_numpy(gray / 255.0).float()[:, None].to(vi.device)


def _to_uint8(x: Tensor) -> np.ndarray:
    """(B, C, H, W) in [0, 1] -> (B, H, W, C) uint8, rounded (exact for images read from 8-bit files)."""
    return (x.detach() * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


class TarDAL(FusionModel):
    """TarDAL generator; ``dim`` features per layer, ``depth`` dense layers.

    ``fused`` is the tanh output in [-1, 1], the quantity the authors train; the display image clips it to
    [0, 1] as their inference does. Two settings reproduce the authors' inference of each release (the
    converters store them):

    * ``batchnorm``: ``running`` (default) is ordinary BatchNorm, running statistics in evaluation (how the
      authors run ``tardal++.pt``); ``batch`` normalises every image by its own statistics in evaluation too
      (``ImageStatsNorm2d``), as the authors run ``tardal.pt`` (their network left in training mode). With
      ``batch`` the output depends on the whole image, so tiles cannot reproduce it.
    * ``color``: ``ycbcr`` (default) is the taskfuse convention: the network reads the BT.601 luminance of the
      visible image and the fused Y is recombined with its Cb/Cr in floating point
      (``taskfuse.data.color.recombine``). ``official`` is the authors' 8-bit OpenCV path: the network reads
      OpenCV's gray of the 8-bit visible image, and the display image is the fused Y clipped to [0, 1],
      truncated to 8 bits and put in place of Y in OpenCV's 8-bit YCrCb of the visible image, converted back
      (OpenCV runs on the CPU).
    """

    input_mode = "rgb"
    output_mode = "y"
    stride = 1

    def __init__(self, dim: int = 32, depth: int = 3, batchnorm: str = "running", color: str = "ycbcr") -> None:
        super().__init__()
        if batchnorm not in BATCHNORM:
            raise TaskfuseError(f"tardal: batchnorm {batchnorm!r} is not one of {', '.join(BATCHNORM)}")
        if color not in COLOR:
            raise TaskfuseError(f"tardal: color {color!r} is not one of {', '.join(COLOR)}")
        self.batchnorm, self.color = batchnorm, color
        norm = ImageStatsNorm2d if batchnorm == "batch" else nn.BatchNorm2d
        self.encoder = _conv(2, dim, norm, nn.ReLU(inplace=True))
        self.dense = nn.ModuleList(_conv(dim * (i + 1), dim, norm, nn.ReLU(inplace=True)) for i in range(depth))
        self.decoder = nn.Sequential(
            _conv(dim * (depth + 1), dim * 4, None, nn.ReLU(inplace=True)),
            _conv(dim * 4, dim * 2, norm, nn.ReLU(inplace=True)),
            _conv(dim * 2, dim, norm, nn.ReLU(inplace=True)),
            _conv(dim, 1, None, nn.Tanh()),
        )

    @property
    def whole_image(self) -> bool:
        return self.batchnorm == "batch"

    def fuse(self, ir: Tensor, vi: Tensor) -> FusionOutput:
        gray = opencv_gray(vi) if self.color == "official" else luminance(vi)
        x = self.encoder(torch.cat((ir, gray), dim=1))
        for layer in self.dense:
            x = torch.cat((x, layer(x)), dim=1)
        return FusionOutput(self.decoder(x))

    def fuse_window(self, ir: Tensor, vi: Tensor) -> Tensor:
        fused = self(ir, vi).fused.clamp(0, 1)
        if self.color == "ycbcr":
            return recombine(fused, vi)
        levels = (fused * 255).to(torch.uint8)[:, 0].cpu().numpy()
        if vi.shape[1] == 1:
            return torch.from_numpy(levels / 255.0).float()[:, None].to(vi.device)
        out = []
        for y, rgb in zip(levels, _to_uint8(vi), strict=True):
            ycrcb = cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb)
            ycrcb[..., 0] = y
            out.append(cv2.cvtColor(ycrcb, cv2.COLOR_YCrCb2RGB))
        return torch.from_numpy(np.stack(out) / 255.0).float().permute(0, 3, 1, 2).to(vi.device)

"""``lite``: the built-in default fusion network, SeAFusion's recipe made fast enough for a laptop CPU.

What it keeps from SeAFusion (seed 000's network, ``models/seafusion/network.py``): it fuses the IR image with the
visible luminance Y and takes colour back from the visible Cb/Cr; it feeds the Sobel gradient magnitude of each
source forward as GRDB's residual branch does, so edges reach the output through a short path; LeakyReLU(0.2)
convolutions. What it changes, for speed: instead of dense blocks at full resolution (51 GMACs at 640 x 480), the
sources and their gradients are folded losslessly into half-resolution channels (pixel unshuffle), a three-scale
encoder-decoder (1/2, 1/4 and 1/8 resolution, skips by addition) works there, and one convolution at full
resolution reads its upsampled features beside the sources: no deep full-resolution feature maps, which is what a
2-core CPU pays most for.

The output is a per-pixel blend of the two sources plus a bounded detail residual,
``F = w I_ir + (1 - w) Y_vi + r / 2`` with ``w = sigmoid(.)``, ``r = tanh(.)``: the network decides where each
source dominates and what detail to add, but cannot darken a region below both sources without paying for it in
the residual, and starts (zero head) from the mean of the sources. Every convolution and the input Sobel use
replicate padding, so a flat pair gives a flat output up to the border (zero padding had taught the first version
a bright line one pixel inside the top and left edges). The training recipe is ``configs/lite.yaml``; the model
card is ``taskfuse/models/lite/MODEL_CARD.md``.

``display="stretch"`` adds a contrast stretch of each display image (``finish``, ``stretch_percentiles``): the
fused images of dim scenes then span the full grey range, as SeAFusion's official inference makes its own by a
minimum-to-maximum stretch. It is a display step: training and the network's output are unchanged. The shipped
default has it (``configs/lite.yaml``); a network built without the key shows its output as fused.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from taskfuse.errors import TaskfuseError
from taskfuse.models.base import FusionModel, FusionOutput
from taskfuse.nn.conv import ConvBNAct, ReplicateConv2d
from taskfuse.nn.resample import replicate_pad
from taskfuse.nn.sobel import sobel_abs


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Module:
    return ConvBNAct(cin, cout, 3, stride=stride, act="lrelu", bn=True, padding_mode="replicate")


def _edges(x: Tensor) -> Tensor:
    """Sobel magnitude with replicated borders (no artificial edge along the image border)."""
    return sobel_abs(replicate_pad(x, (1, 1, 1, 1)))[..., 1:-1, 1:-1]


def _up(x: Tensor, like: Tensor) -> Tensor:
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


DISPLAYS = ("none", "stretch")
"""``LiteFusion(display=...)``: the display image as fused, or contrast-stretched (``stretch_percentiles``)."""


def percentile_range(values: Tensor, percent: float) -> tuple[Tensor, Tensor]:
    """The ``percent``-th and ``100 - percent``-th percentiles of each row of ``values`` (B, N), interpolated
    linearly between the two nearest ranks as ``numpy.percentile`` does by default; two (B,) tensors. Found
    among the ``percent`` % smallest and largest values (``topk``), not by sorting every row.

    >>> [t.tolist() for t in percentile_range(torch.tensor([[4.0, 1.0, 3.0, 2.0]]), 25.0)]
    [[1.75], [3.25]]

    While ``torch.export`` traces it (the ONNX export of the display image, ``taskfuse.export``), the ranks are
    tensors and the rows are sorted whole: a graph for every image size cannot fix ``topk``'s count.
    """
    if torch.compiler.is_exporting():
        return _sorted_percentile_range(values, percent)
    position = percent / 100.0 * (values.shape[1] - 1)
    rank, frac = int(position), position - int(position)
    k = min(rank + 2, values.shape[1])
    rising = values.topk(k, dim=1, largest=False).values
    falling = values.topk(k, dim=1, largest=True).values
    if frac == 0:
        return rising[:, rank], falling[:, rank]
    return (
        (1 - frac) * rising[:, rank] + frac * rising[:, rank + 1],
        (1 - frac) * falling[:, rank] + frac * falling[:, rank + 1],
    )


def _sorted_percentile_range(values: Tensor, percent: float) -> tuple[Tensor, Tensor]:
    """``percentile_range`` with the rank computed from the row length as a tensor, for any traced size."""
    last = torch.ones_like(values[:1]).sum() - 1
    position = percent / 100.0 * last
    rank = position.floor()
    frac = position - rank
    ordered = values.sort(dim=1).values
    batch = values.shape[0]

    def at(index: Tensor) -> Tensor:
        return ordered.gather(1, torch.minimum(index.clamp(min=0), last).long().expand(batch, 1))[:, 0]

    return (
        (1 - frac) * at(rank) + frac * at(rank + 1),
        (1 - frac) * at(last - rank) + frac * at(last - rank - 1),
    )


def stretch_percentiles(image: Tensor, percent: float, max_gain: float = 4.0) -> Tensor:
    """Each display image of (B, C, H, W) in [0, 1] mapped linearly from its ``percent``-th and
    ``100 - percent``-th percentiles (all channels together, so hues keep their order) to 0 and 1, clipped, and
    truncated to 8-bit levels (levels / 255, as SeAFusion's official stretch, ``stretch_to_levels``).

    The gain is at most ``max_gain``, so that an image of little contrast (fog, a flat sky) is not blown up to
    its noise: its range then spans ``max_gain`` times its width and starts at ``(1 - gain * span) * mid``, its
    unstretched midpoint ``mid`` scaled by the room left, so a dark image stays dark and a grey one grey. An
    image whose two percentiles are equal is kept as it is.

    >>> stretch_percentiles(torch.tensor([[[[0.2, 0.4, 0.6]]]]), 0.0).mul(255).tolist()
    [[[[0.0, 127.0, 255.0]]]]
    >>> stretch_percentiles(torch.tensor([[[[0.50, 0.51, 0.52]]]]), 0.0).mul(255).tolist()
    [[[[119.0, 129.0, 140.0]]]]
    """
    low, high = percentile_range(image.flatten(1).float(), percent)
    lo = low.view(-1, 1, 1, 1)
    span = high.view(-1, 1, 1, 1) - lo
    gain = torch.where(span > 0, 1 / span.clamp(min=1 / max_gain), 0)
    shift = (1 - gain * span) * (lo + span / 2)
    stretched = ((image - lo) * gain + shift).clamp(0, 1)
    return torch.where(span > 0, torch.floor(255.0 * stretched) / 255.0, image)


class LiteFusion(FusionModel):
    """Fusion network of luminance; ``width`` is the channel count at 1/2 resolution (2x at 1/4, 4x at 1/8);
    ``display``, ``stretch_percent`` and ``stretch_max_gain``: the display step (``finish``,
    ``stretch_percentiles``; module docstring)."""

    input_mode = "y"
    output_mode = "y"
    stride = 8

    def __init__(
        self, width: int = 32, display: str = "none", stretch_percent: float = 0.5, stretch_max_gain: float = 4.0
    ) -> None:
        super().__init__()
        if width < 1:
            raise ValueError(f"lite: width must be a positive channel count, got {width}")
        if display not in DISPLAYS:
            raise TaskfuseError(f"lite: display {display!r} is not one of {', '.join(DISPLAYS)}")
        if not 0 <= stretch_percent < 50:
            raise TaskfuseError(f"lite: stretch_percent must be in [0, 50), got {stretch_percent}")
        if stretch_max_gain < 1:
            raise TaskfuseError(f"lite: stretch_max_gain must be at least 1, got {stretch_max_gain}")
        self.display, self.stretch_percent, self.stretch_max_gain = display, stretch_percent, stretch_max_gain
        w2, w4, w8 = width, 2 * width, 4 * width
        self.enc2 = nn.Sequential(_conv(16, w2), _conv(w2, w2))
        self.enc4 = nn.Sequential(_conv(w2, w4, 2), _conv(w4, w4))
        self.enc8 = nn.Sequential(_conv(w4, w8, 2), _conv(w8, w8), _conv(w8, w8))
        self.up8 = _conv(w8, w4)
        self.dec4 = _conv(w4, w4)
        self.up4 = _conv(w4, w2)
        self.dec2 = _conv(w2, w2)
        self.head = ReplicateConv2d(w2 + 4, 2, 3, padding=1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    @property
    def context(self) -> tuple[int, int]:
        """A pixel's output depends on inputs up to 58 pixels away (measured: one changed input pixel moves the
        output from 58 pixels before it to 57 after it): 64 on the 8-pixel grid of the 1/8 scale."""
        return 64, self.stride

    def finish(self, image: Tensor) -> Tensor:
        if self.display == "none":
            return image
        return stretch_percentiles(image, self.stretch_percent, self.stretch_max_gain)

    def fuse(self, ir: Tensor, vi: Tensor) -> FusionOutput:
        sources = torch.cat((ir, vi, _edges(ir), _edges(vi)), dim=1)
        x2 = self.enc2(F.pixel_unshuffle(sources, 2))
        x4 = self.enc4(x2)
        x8 = self.enc8(x4)
        y4 = self.dec4(x4 + _up(self.up8(x8), x4))
        y2 = self.dec2(x2 + _up(self.up4(y4), x2))
        weight, residual = self.head(torch.cat((_up(y2, sources), sources), dim=1)).chunk(2, dim=1)
        w = torch.sigmoid(weight)
        return FusionOutput(w * ir + (1 - w) * vi + torch.tanh(residual) / 2, {"ir_weight": w})

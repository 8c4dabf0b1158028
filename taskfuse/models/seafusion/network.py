"""SeAFusion (Tang, Yuan, Ma 2022, Inf. Fusion 82) - the fusion network that seed 000 retrains.

Two modality encoders of one 3 x 3 conv + LeakyReLU(0.2) and two gradient residual dense blocks each
(GRDB, ``taskfuse.nn.dense``, with the authors' trainable Sobel-initialised gradient kernels), concatenation, and
a light reconstructor of four 3 x 3 convs (LeakyReLU(0.2); the last one tanh, mapped to [0, 1]). It fuses the IR
image with the visible luminance Y; colour comes back from the visible Cb/Cr. Widths follow the authors'
``FusionNet.py``: encoder widths (16, 32, 48), reconstructor 96 -> 64 -> 32 -> 16 -> 1 (BatchNorm layers defined
there are never applied, so none are used here). 0.167 M parameters and 51.0 GMACs at 640 x 480; with its BiSeNet
segmenter 13.06 M and 65.5 GMACs (seed 002, Table XIV: 13.06 M, 65.54 G). The authors' released weights load
through ``taskfuse convert seafusion-official`` (``taskfuse.models.seafusion.convert``) and reproduce their
published images.

Losses live in ``taskfuse.models.seafusion.loss`` (original content loss or the seed-000 loss, chosen by the
``loss.variant`` key of ``configs/seafusion.yaml``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from taskfuse.errors import TaskfuseError
from taskfuse.models.base import FusionModel, FusionOutput
from taskfuse.nn.conv import ConvBNAct
from taskfuse.nn.dense import GRDB

POSTPROCESS = ("none", "official")

_KR, _KG, _KB = 0.299, 0.587, 0.114
_CR, _CB = 0.713, 0.564
_TO_RGB = torch.tensor([[1.0, 1.0, 1.0], [1.403, -0.714, 0.0], [0.0, -0.344, 1.773]])
"""The authors' YCrCb -> RGB matrix (rows: Y, Cr - 0.5, Cb - 0.5; columns: R, G, B), three decimals."""


def _encoder(widths: tuple[int, int, int]) -> nn.Sequential:
    return nn.Sequential(
        ConvBNAct(1, widths[0], 3, act="lrelu", bn=False), GRDB(widths[0], widths[1]), GRDB(widths[1], widths[2])
    )


class SeAFusion(FusionModel):
    """SeAFusion fusion network; ``widths`` are the encoder widths (stem, GRDB 1, GRDB 2).

    ``postprocess`` chooses how ``fuse_color`` makes the display image:

    * ``"none"`` (default): the taskfuse convention of every method, the fused Y with the visible Cb/Cr
      (``taskfuse.data.color.recombine``), clipped to [0, 1]. Intensities then mean the same across images and
      methods, tiles reproduce whole images, and fusion metrics score the network rather than a contrast stretch.
    * ``"official"``: the authors' inference (``test.py``): their three-decimal YCrCb conversion (Cr = 0.713
      (R - Y) + 0.5, Cb = 0.564 (B - Y) + 0.5, and back with ``_TO_RGB``), clipped to [0, 1], then every image
      stretched from its own minimum to maximum over all three channels to 0..255 and truncated to 8-bit levels.
      The stretch (``finish``, so tiles of a large image share one range) changes brightness image by image,
      so it is not the default; the converter of the released weights stores it, because published SeAFusion
      results (and the reference images of ``tests/models/test_official.py``) were made that way.
    """

    input_mode = "y"
    output_mode = "y"
    stride = 1

    def __init__(self, widths: tuple[int, int, int] | list[int] = (16, 32, 48), postprocess: str = "none") -> None:
        super().__init__()
        w = tuple(int(c) for c in widths)
        if len(w) != 3:
            raise ValueError(f"seafusion: widths needs three encoder widths, got {list(widths)}")
        if postprocess not in POSTPROCESS:
            raise TaskfuseError(f"seafusion: postprocess {postprocess!r} is not one of {', '.join(POSTPROCESS)}")
        self.postprocess = postprocess
        self.vi_encoder = _encoder(w)
        self.ir_encoder = _encoder(w)
        self.decoder = nn.Sequential(
            ConvBNAct(2 * w[2], 2 * w[1], 3, act="lrelu", bn=False),
            ConvBNAct(2 * w[1], 2 * w[0], 3, act="lrelu", bn=False),
            ConvBNAct(2 * w[0], w[0], 3, act="lrelu", bn=False),
            ConvBNAct(w[0], 1, 3, act="tanh", bn=False),
        )

    def fuse(self, ir: Tensor, vi: Tensor) -> FusionOutput:
        feats = torch.cat((self.vi_encoder(vi), self.ir_encoder(ir)), dim=1)
        return FusionOutput(self.decoder(feats) / 2 + 0.5)

    def fuse_window(self, ir: Tensor, vi: Tensor) -> Tensor:
        if self.postprocess == "none":
            return super().fuse_window(ir, vi)
        with self._mode():
            fused = self(ir, vi).fused
            if vi.shape[1] == 3:
                r, g, b = vi.unbind(1)
                y = _KR * r + _KG * g + _KB * b
                cr, cb = (r - y) * _CR + 0.5, (b - y) * _CB + 0.5
                centred = torch.stack((fused[:, 0], cr - 0.5, cb - 0.5), dim=-1)
                fused = (centred @ _TO_RGB.to(centred)).permute(0, 3, 1, 2)
            return fused.clamp(0, 1)

    def finish(self, image: Tensor) -> Tensor:
        return stretch_to_levels(image) if self.postprocess == "official" else image


def stretch_to_levels(x: Tensor) -> Tensor:
    """Each image of (B, C, H, W) stretched from its minimum to its maximum over all channels to 0..255,
    truncated to whole levels and returned as levels / 255 (``write_image`` then stores exactly those levels).
    A constant image is kept as it is."""
    lo = x.amin(dim=(1, 2, 3), keepdim=True)
    span = x.amax(dim=(1, 2, 3), keepdim=True) - lo
    stretched = torch.where(span > 0, (x - lo) / torch.where(span > 0, span, 1), x)
    return torch.floor(255.0 * stretched) / 255.0

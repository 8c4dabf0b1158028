"""SeAFusion (Tang, Yuan, Ma 2022, Inf. Fusion 82) - the fusion network that seed 000 retrains.

Two modality encoders of one 3 x 3 conv + LeakyReLU(0.2) and two gradient residual dense blocks each
(GRDB, ``taskfuse.nn.dense``), concatenation, and a light reconstructor of four 3 x 3 convs
(LeakyReLU(0.2); the last one tanh, mapped to [0, 1]). It fuses the IR image with the visible luminance Y;
colour comes back from the visible Cb/Cr. Widths follow the authors' ``FusionNet.py``: encoder widths
(16, 32, 48), reconstructor 96 -> 64 -> 32 -> 16 -> 1 (BatchNorm layers defined there are never applied,
so none are used here). 0.165 M parameters and 51.0 GMACs at 640 x 480; with its BiSeNet segmenter 13.06 M and
65.5 GMACs (seed 002, Table XIV: 13.06 M, 65.54 G).

Losses live in ``taskfuse.models.seafusion.loss`` (original content loss or the seed-000 loss, chosen by the
``loss.variant`` key of ``configs/seafusion.yaml``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from taskfuse.models.base import FusionModel, FusionOutput
from taskfuse.nn.conv import ConvBNAct
from taskfuse.nn.dense import GRDB


def _encoder(widths: tuple[int, int, int]) -> nn.Sequential:
    return nn.Sequential(
        ConvBNAct(1, widths[0], 3, act="lrelu", bn=False), GRDB(widths[0], widths[1]), GRDB(widths[1], widths[2])
    )


class SeAFusion(FusionModel):
    """SeAFusion fusion network; ``widths`` are the encoder widths (stem, GRDB 1, GRDB 2)."""

    input_mode = "y"
    output_mode = "y"
    stride = 1

    def __init__(self, widths: tuple[int, int, int] | list[int] = (16, 32, 48)) -> None:
        super().__init__()
        w = tuple(int(c) for c in widths)
        if len(w) != 3:
            raise ValueError(f"seafusion: widths needs three encoder widths, got {list(widths)}")
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

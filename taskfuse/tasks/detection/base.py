"""What a detector returns (its raw head outputs, read by the detection loss and post-processing) and the
registry of detectors (each detector module registers its variants)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from taskfuse.registry import Registry

DETECTORS: Registry = Registry("detector")


@dataclass
class DetectionOutput:
    """Raw head outputs of a batch, flattened over the anchor points (level by level, row-major within one).

    ``reg`` (B, A, 4): centre offset from the cell's top-left corner and log width/height, in stride units;
    ``obj`` (B, A) and ``cls`` (B, A, C): logits; ``grid`` (A, 2): each point's cell (x, y) on its level;
    ``strides`` (A,): its level's stride; ``image_size``: (H, W) of the input before padding to 32.
    """

    reg: Tensor
    obj: Tensor
    cls: Tensor
    grid: Tensor
    strides: Tensor
    image_size: tuple[int, int]

    def boxes(self) -> Tensor:
        """(B, A, 4) predicted boxes ``cx, cy, w, h`` in input pixels, in float32 (also under autocast)."""
        reg, s = self.reg.float(), self.strides[:, None]
        return torch.cat([(reg[..., :2] + self.grid) * s, reg[..., 2:].exp() * s], -1)

    def centres(self) -> Tensor:
        """(A, 2) pixel centres of the anchor points' cells, where the label assignment's priors are measured."""
        return (self.grid + 0.5) * self.strides[:, None]

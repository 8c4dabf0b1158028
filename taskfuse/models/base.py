"""The contract every fusion method follows, learned or classical.

``FusionModel.forward(ir, vi)`` takes infrared (B, 1, H, W) and visible (B, 3, H, W) RGB or (B, 1, H, W)
luminance, all in [0, 1], at any H, W, and returns a ``FusionOutput``. ``fused`` is luminance
(``output_mode = "y"``; colour comes back through ``taskfuse.data.color.recombine``) or RGB
(``output_mode = "rgb"``). ``aux`` carries whatever the method's loss needs (segmentation logits,
boundary and binary maps, reconstructions, priors), keyed by name.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn

from taskfuse.data.color import recombine
from taskfuse.nn.resample import pad_to_multiple


@dataclass
class FusionOutput:
    """What a fusion model returns: the fused image and the auxiliary outputs its loss reads."""

    fused: Tensor
    aux: dict[str, Tensor] = field(default_factory=dict)


class FusionModel(nn.Module):
    """Base class of fusion networks and classical rules.

    Subclasses implement ``fuse(ir, vi)`` on inputs already padded to a multiple of ``stride``;
    ``forward`` pads with reflection, calls it, and crops every spatial output back to (H, W).

    ``inference_only`` (set by ``taskfuse.load``) runs ``forward`` and ``fuse_color`` under
    ``torch.inference_mode``, so that fusing never builds an autograd graph; ``source`` (also set there)
    records where the model comes from (method, weights file and its SHA-256, config) for run manifests.
    """

    output_mode: ClassVar[Literal["y", "rgb"]] = "y"
    input_mode: ClassVar[Literal["y", "rgb"]] = "y"
    stride: ClassVar[int] = 1
    inference_only: bool = False
    source: dict[str, Any] | None = None

    @property
    def whole_image(self) -> bool:
        """True when the display image at a pixel depends on statistics of the whole image (a per-image
        normalisation or contrast stretch), so that fusing in tiles cannot reproduce the untiled result."""
        return False

    def fuse(self, ir: Tensor, vi: Tensor) -> FusionOutput:
        raise NotImplementedError

    def _mode(self) -> contextlib.AbstractContextManager:
        if self.inference_only and not torch.is_inference_mode_enabled():
            return torch.inference_mode()
        return contextlib.nullcontext()

    def forward(self, ir: Tensor, vi: Tensor) -> FusionOutput:
        check_pair(ir, vi)
        with self._mode():
            if self.input_mode == "y" and vi.shape[1] == 3:
                vi = vi[:, :1] * 0.299 + vi[:, 1:2] * 0.587 + vi[:, 2:3] * 0.114
            elif self.input_mode == "rgb" and vi.shape[1] == 1:
                vi = vi.expand(-1, 3, -1, -1)
            h, w = ir.shape[-2:]
            ir, vi = pad_to_multiple(ir, self.stride), pad_to_multiple(vi, self.stride)
            out = self.fuse(ir, vi)
            if ir.shape[-2:] != (h, w):
                out = FusionOutput(
                    crop_to(out.fused, h, w), {k: crop_to(v, h, w, ir.shape[-2:]) for k, v in out.aux.items()}
                )
            return out

    def fuse_color(self, ir: Tensor, vi: Tensor) -> Tensor:
        """Fused image for display: RGB when ``vi`` is colour (chroma from ``vi``), gray otherwise."""
        with self._mode():
            fused = self(ir, vi).fused
            if self.output_mode == "rgb":
                return fused.clamp(0, 1) if vi.shape[1] == 3 else fused.mean(1, keepdim=True).clamp(0, 1)
            return recombine(fused, vi)


def check_pair(ir: Tensor, vi: Tensor) -> None:
    """Shapes a fusion model accepts: IR (B, 1, H, W), VIS (B, 1|3, H, W) of the same B, H, W."""
    if ir.dim() != 4 or ir.shape[1] != 1:
        raise ValueError(f"ir must be (B, 1, H, W), got {tuple(ir.shape)}")
    if vi.dim() != 4 or vi.shape[1] not in (1, 3):
        raise ValueError(f"vi must be (B, 3, H, W) RGB or (B, 1, H, W) luminance, got {tuple(vi.shape)}")
    if ir.shape[0] != vi.shape[0] or ir.shape[-2:] != vi.shape[-2:]:
        raise ValueError(f"ir {tuple(ir.shape)} and vi {tuple(vi.shape)} differ in batch or size")


def crop_to(t: Tensor, h: int, w: int, padded: tuple[int, int] | None = None) -> Tensor:
    """Crop a padded spatial output back to (h, w); outputs at a lower resolution are cropped in proportion."""
    if t.dim() < 3:
        return t
    ph, pw = padded if padded is not None else t.shape[-2:]
    th, tw = t.shape[-2:]
    if (th, tw) == (ph, pw):
        return t[..., :h, :w]
    return t[..., : max(1, round(h * th / ph)), : max(1, round(w * tw / pw))]

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
from taskfuse.data.io import to_unit
from taskfuse.nn.resample import pad_to_multiple

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
"""Precisions of ``FusionModel.fuse_batch``: fp32, or autocast to bfloat16 / float16."""


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
    def context(self) -> tuple[int, int]:
        """(pixels, align): how far from a pixel the inputs still change the output (0 when the model does not
        say), and the grid its tiles' origins must lie on (``stride``: a network that downsamples is
        shift-equivariant only by multiples of it). Tiled fusion fuses at least that much context around every
        tile, so that tiling reproduces the untiled image."""
        return 0, self.stride

    @property
    def whole_image(self) -> bool:
        """True when the network's output at a pixel depends on statistics of the whole image (a per-image
        normalisation inside it), so that fusing in tiles cannot reproduce the untiled result. A contrast
        stretch of the display image belongs in ``finish``, which tiled fusion applies to the whole image."""
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
        """Fused image for display: RGB when ``vi`` is colour (chroma from ``vi``), gray otherwise
        (``fuse_window``, then ``finish``)."""
        with self._mode():
            return self.finish(self.fuse_window(ir, vi))

    def fuse_window(self, ir: Tensor, vi: Tensor) -> Tensor:
        """The display image before ``finish``: what every pixel's neighbourhood decides, so that a tile fused
        with enough context (``context``) gives the same pixels as the whole image."""
        with self._mode():
            fused = self(ir, vi).fused
            if self.output_mode == "rgb":
                return fused.clamp(0, 1) if vi.shape[1] == 3 else fused.mean(1, keepdim=True).clamp(0, 1)
            return recombine(fused, vi)

    def finish(self, image: Tensor) -> Tensor:
        """The last step of ``fuse_color``, on display images (B, C, H, W) in [0, 1], one that reads each whole
        image, such as a contrast stretch by the image's own range; none here. Tiled fusion applies it once to
        the assembled image, so tiles still reproduce the untiled result."""
        return image

    @torch.inference_mode()
    def fuse_batch(
        self, ir: Tensor, vi: Tensor, dtype: str = "fp32", channels_last: bool = False, compile: bool = False
    ) -> Tensor:
        """Fused display images of a batch of pairs, as ``fuse_color`` gives them, for large-batch inference.

        ``ir`` (B, 1, H, W) and ``vi`` (B, 1|3, H, W) are float in [0, 1] or uint8 levels, which are divided
        by 255 where the model runs (a quarter of the bytes cross to a GPU). They move to the model's device
        (parameter-free rules run where ``ir`` is). Returns (B, 1|3, H, W) float32 in [0, 1] on that device;
        ``taskfuse.data.io.quantize`` makes 8-bit levels of it there.

        ``dtype``: ``"fp32"`` (default), or ``"bf16"`` / ``"fp16"`` to run under ``torch.autocast`` in that
        precision (docs/performance.md: on real pairs the default network stays within one grey level of
        fp32 in fp16, not in bf16). ``channels_last``: convert the weights (for good) and the inputs to the
        channels-last memory format, which tensor-core convolutions prefer. ``compile``: run through
        ``torch.compile``, built on the first call and reused; each new input shape compiles once more.

            >>> import torch, taskfuse
            >>> model = taskfuse.load()
            >>> ir, vi = torch.rand(4, 1, 32, 48), torch.randint(0, 256, (4, 3, 32, 48), dtype=torch.uint8)
            >>> model.fuse_batch(ir, vi).shape
            torch.Size([4, 3, 32, 48])
        """
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
        param = next(self.parameters(), None)
        device = param.device if param is not None else ir.device
        ir, vi = to_unit(ir.to(device, non_blocking=True)), to_unit(vi.to(device, non_blocking=True))
        if channels_last:
            self.to(memory_format=torch.channels_last)
            ir, vi = ir.contiguous(memory_format=torch.channels_last), vi.contiguous(memory_format=torch.channels_last)
        run = self.fuse_color
        if compile:
            run = self.__dict__.get("_compiled") or self.__dict__.setdefault("_compiled", torch.compile(run))
        with torch.autocast(device.type, dtype=DTYPES[dtype], enabled=dtype != "fp32"):
            return run(ir, vi).float()


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

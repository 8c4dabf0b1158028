"""Fusing images on disk: load a method, pair the files, fuse, write atomically, skip finished outputs.

Large pairs are fused in tiles (``fuse_tensors(..., tile=N | "auto")``): every tile is fused with ``overlap``
pixels of context on each side and only its centre is kept. For a model whose receptive field fits in that
context this reproduces the untiled output up to float rounding, borders included (see ``fuse_tiled``).
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from taskfuse import models
from taskfuse.data.io import read_ir, read_vi, write_image
from taskfuse.data.pairs import Pair, check_sizes
from taskfuse.device import resolve_device
from taskfuse.errors import TaskfuseError
from taskfuse.models.base import FusionModel
from taskfuse.models.classical import GuidedFilterFusion, LaplacianPyramidFusion
from taskfuse.models.weights import load_model, read_meta
from taskfuse.nn.attention import ChannelAttention


def load(
    method: str | None = None, weights: str | os.PathLike | None = None, device: str = "cpu", **cfg: Any
) -> FusionModel:
    """A fusion model ready for inference (eval mode, on ``device``).

    With ``weights`` the method and its config come from the checkpoint (``method``, if given, must agree).
    Without, a method whose spec ships weights (the default, ``lite``) loads those; a classical rule is built
    with ``cfg``; any other learned method needs ``weights``.
    """
    dev = resolve_device(device)
    name = (method or models.DEFAULT_METHOD).lower()
    if weights is None and models.get(name).weights is not None and not cfg:
        weights = models.get(name).weights
    if weights is not None:
        stored = read_meta(weights).get("method")
        if method is not None and stored and method.lower() != stored.lower():
            raise TaskfuseError(f"{weights} holds weights of {stored!r}, not {method!r}; drop --method or fix it")
        return load_model(weights, dev, **cfg)
    model = models.create(name, **cfg)
    if any(True for _ in model.parameters()):
        raise TaskfuseError(
            f"method {method!r} is a learned network and needs trained weights: pass --weights FILE.safetensors"
        )
    return model.to(dev).eval()


def _match_size(ir: Tensor, vi: Tensor, resize: str | None) -> tuple[Tensor, Tensor]:
    if ir.shape[-2:] == vi.shape[-2:]:
        return ir, vi
    if resize == "vi":
        vi = F.interpolate(vi[None], size=ir.shape[-2:], mode="bilinear", antialias=True, align_corners=False)[0]
    elif resize == "ir":
        ir = F.interpolate(ir[None], size=vi.shape[-2:], mode="bilinear", antialias=True, align_corners=False)[0]
    return ir.clamp(0, 1), vi.clamp(0, 1)


def model_device(model: FusionModel) -> torch.device:
    """Where a model's weights live; parameter-free classical rules report CPU."""
    return next((p.device for p in model.parameters()), torch.device("cpu"))


Tile = int | Literal["auto"] | None
"""Tiling request: a core tile size in pixels, ``"auto"``, or ``None`` for one pass over the whole image."""

AUTO_PIXELS = 2048 * 2048
"""``tile="auto"`` off CUDA tiles pairs with more pixels than this; on CUDA it tiles only when memory runs out."""
AUTO_TILE = 1024
"""Core tile size ``tile="auto"`` starts from; after each CUDA out-of-memory error it is halved."""
MIN_TILE = 128
"""``tile="auto"`` gives up when a CUDA out-of-memory error persists at this tile size."""

GLOBAL_LAYERS: tuple[type[nn.Module], ...] = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, ChannelAttention)
"""Layers that pool over the whole image, so that no finite overlap makes tiled output equal untiled output."""


def tile_context(model: FusionModel, overlap: int) -> tuple[int, int]:
    """(halo, align): the context fused around every tile and the grid tile origins must lie on.

    ``align`` is the model's ``stride`` (networks that downsample are shift-equivariant only by multiples of
    it); ``halo`` is ``overlap`` rounded up to ``align``. The classical multi-scale rules know their receptive
    field, so their halo is raised to it, which makes tiling them exact rather than refusing it:

    * Laplacian pyramid with n levels: level l+1 blurs level l with a 5-tap kernel (radius 2 * 2^l input
      pixels) and expanding back blurs again, so the fused output depends on input within
      4 * 2^(n-1) - 4 pixels (60 for n = 5); the pyramid subsamples from pixel 0, so ``align`` is 2^(n-1).
    * GFF: the base weights W^B = G(P, I; r1) filter the saliency masks (3 x 3 Laplacian and 11 x 11
      Gaussian: radius 6) with two box filters of radius r1 (a, b, then their means): 2 r1 + 6 pixels
      (96 with the paper's r1 = 45); the detail weights need 2 r2 + 6, the base layer 15.
    """
    align, need = model.stride, 0
    if isinstance(model, LaplacianPyramidFusion):
        align, need = max(align, 2 ** (model.levels - 1)), 4 * 2 ** (model.levels - 1) - 4
    elif isinstance(model, GuidedFilterFusion):
        need = max(2 * model.r1 + 6, 2 * model.r2 + 6, 15)
    return _round_up(max(overlap, need), align), align


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def _spans(n: int, tile: int, halo: int) -> list[tuple[slice, slice, slice]]:
    """Cores of ``tile`` pixels covering [0, n), each as (window with ``halo`` context clipped to the image,
    core in image coordinates, core in window coordinates)."""
    spans = []
    for c0 in range(0, n, tile):
        c1 = min(c0 + tile, n)
        w0, w1 = max(0, c0 - halo), min(n, c1 + halo)
        spans.append((slice(w0, w1), slice(c0, c1), slice(c0 - w0, c1 - w0)))
    return spans


@torch.inference_mode()
def fuse_tiled(
    model: FusionModel,
    ir: Tensor,
    vi: Tensor,
    tile: int,
    halo: int,
    align: int = 1,
    device: torch.device | None = None,
) -> Tensor:
    """Fuse (1, H, W) IR and (1|3, H, W) VIS in cores of ``tile`` pixels, each with ``halo`` pixels of context.

    Every window (core plus context, clipped to the image) goes through ``model.fuse_color``, so colour is
    handled exactly as untiled (luminance fused, VIS chroma recombined per pixel), and only the core is kept.
    Cores and context are rounded up to multiples of ``align`` so that every window starts on the model's
    stride grid. Windows touching the image border end at the border, where the model pads as it does for
    the whole image; elsewhere a receptive field within ``halo`` sees exactly its untiled context. So the
    result equals the untiled one up to float rounding and is kept as is: a feathered blend of overlaps
    would only mix in pixels computed with truncated context. A ``tile`` covering the image fuses it whole.
    Returns the display image (1|3, H, W) on the CPU.
    """
    dev = device or model_device(model)
    h, w = ir.shape[-2:]
    tile, halo = _round_up(tile, align), _round_up(halo, align)
    if tile >= h and tile >= w:
        return model.fuse_color(ir[None].to(dev), vi[None].to(dev))[0].cpu()
    if model.whole_image or any(isinstance(m, GLOBAL_LAYERS) for m in model.modules()):
        warnings.warn(
            f"{type(model).__name__} uses statistics of the whole image, so each {tile}-pixel tile sees only its "
            "own and the tiled result differs from the untiled one; use --tile off where memory allows",
            stacklevel=2,
        )
    out = None
    for win_y, core_y, local_y in _spans(h, tile, halo):
        for win_x, core_x, local_x in _spans(w, tile, halo):
            part = model.fuse_color(ir[None, :, win_y, win_x].to(dev), vi[None, :, win_y, win_x].to(dev))[0]
            if out is None:
                out = torch.empty(part.shape[0], h, w, dtype=part.dtype)
            out[:, core_y, core_x] = part[:, local_y, local_x].cpu()
    return out


def _fuse_auto(model: FusionModel, ir: Tensor, vi: Tensor, dev: torch.device, overlap: int) -> Tensor:
    """Whole pair when it fits; tiles of ``AUTO_TILE`` above ``AUTO_PIXELS`` off CUDA, or on CUDA after an
    out-of-memory error, halving the tile on each further one down to ``MIN_TILE``."""
    h, w = ir.shape[-2:]
    halo, align = tile_context(model, overlap)
    tile = AUTO_TILE if dev.type != "cuda" and h * w > AUTO_PIXELS else None
    while True:
        try:
            return fuse_tiled(model, ir, vi, tile or max(h, w), halo, align, dev)
        except torch.cuda.OutOfMemoryError as e:
            if tile is not None and tile <= MIN_TILE:
                raise TaskfuseError(
                    f"CUDA ran out of memory fusing a {w}x{h} pair even in {tile}-pixel tiles; free GPU memory "
                    "or use --device cpu"
                ) from e
        torch.cuda.empty_cache()
        tile = tile // 2 if tile else min(AUTO_TILE, _round_up(math.ceil(max(h, w) / 2), align))


@torch.inference_mode()
def fuse_tensors(
    model: FusionModel,
    ir: Tensor,
    vi: Tensor,
    device: torch.device | None = None,
    tile: Tile = None,
    overlap: int = 32,
) -> Tensor:
    """Fuse one pair of (1, H, W) IR and (1|3, H, W) VIS tensors on ``device`` (default: the model's).

    ``tile``: ``None`` fuses the whole pair at once; N fuses cores of N pixels with ``overlap`` pixels of
    context (raised where ``tile_context`` knows the model needs more; see ``fuse_tiled``); ``"auto"`` tiles
    only pairs above ``AUTO_PIXELS`` off CUDA, or when CUDA runs out of memory. ``overlap`` must cover the
    model's receptive field for the tiled result to equal the untiled one.
    Returns the display image (1|3, H, W) on the CPU.
    """
    if not (tile is None or tile == "auto" or (isinstance(tile, int) and tile > 0)):
        raise TaskfuseError(
            f"tile must be a positive number of pixels, 'auto' or None (--tile N|auto|off), got {tile!r}"
        )
    if overlap < 0:
        raise TaskfuseError(f"tile overlap must be >= 0 pixels (--tile-overlap), got {overlap}")
    dev = device or model_device(model)
    if tile == "auto":
        return _fuse_auto(model, ir, vi, dev, overlap)
    if tile is None:
        return model.fuse_color(ir[None].to(dev), vi[None].to(dev))[0].cpu()
    return fuse_tiled(model, ir, vi, tile, *tile_context(model, overlap), dev)


@dataclass
class FuseSummary:
    written: int
    skipped: int
    seconds: float

    def line(self, out: Path) -> str:
        rate = self.written / self.seconds if self.seconds > 0 else 0.0
        return (
            f"fused {self.written} image(s), skipped {self.skipped} already done, in {self.seconds:.2f} s "
            f"({rate:.2f} images/s) -> {out}"
        )


def fuse_pairs(
    model: FusionModel,
    pairs: Iterable[Pair],
    out: str | os.PathLike,
    ext: str = ".png",
    overwrite: bool = False,
    resize: str | None = None,
    ir_range: str = "auto",
    progress: bool = True,
    device: torch.device | None = None,
    tile: Tile = "auto",
    overlap: int = 32,
) -> FuseSummary:
    """Fuse every pair into ``out/<name><ext>``; existing outputs are skipped unless ``overwrite``.

    Sizes are checked from the file headers before anything is written, so a mismatch fails fast. Each output
    is written atomically: an interrupted or failed run leaves only complete files, and a rerun resumes.
    ``device`` runs parameter-free rules on a GPU too (default: where the model's weights are). ``tile`` and
    ``overlap`` are those of ``fuse_tensors``.
    """
    pairs = list(pairs)
    check_sizes(pairs, resize)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise TaskfuseError(f"--out {out} is a file; give a folder for the fused images")
    out.mkdir(parents=True, exist_ok=True)
    written = skipped = 0
    start = time.perf_counter()
    for pair in tqdm(pairs, desc="fuse", unit="img", disable=None if progress else True, dynamic_ncols=True):
        target = out / f"{pair.name}{ext}"
        if target.exists() and not overwrite:
            skipped += 1
            continue
        ir, vi = _match_size(read_ir(pair.ir, ir_range), read_vi(pair.vi), resize)
        write_image(target, fuse_tensors(model, ir, vi, device, tile, overlap))
        written += 1
    return FuseSummary(written, skipped, time.perf_counter() - start)

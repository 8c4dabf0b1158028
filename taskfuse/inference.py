"""Fusing images on disk: load a method, pair the files, fuse, write atomically, resume only identical work.

A run is planned before anything is written (``plan_fuse``: output against inputs, sizes from the file
headers, the run manifest of ``taskfuse.data.manifest``), then started (``FuseJob.start``: folder, leftovers,
manifest) and run as a pipeline (``FuseJob.run``): worker threads decode pairs (``decode_pair``) ahead of the
model, pairs of one size are fused in batches (``FusionModel.fuse_batch``; through pinned memory and
asynchronous copies on CUDA), and worker threads encode the results and write each file atomically (a video's
frames are written by the main thread, in order). OpenCV, Pillow and PyTorch release the GIL while they decode,
encode and compute, so the threads run in parallel (OpenCV for a whole PNG, Pillow between the chunks its reader
walks in Python: ``taskfuse.data.io``). With ``processes`` the threads hand that work to forked worker processes
(``worker_processes``), each with its own interpreter lock.

Large pairs are fused in tiles (``fuse_tensors(..., tile=N | "auto")``): every tile is fused with ``overlap``
pixels of context on each side and only its centre is kept. For a model whose receptive field fits in that
context this reproduces the untiled output up to float rounding, borders included (see ``fuse_tiled``).
"""

from __future__ import annotations

import json
import math
import os
import signal
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from taskfuse import models
from taskfuse.data.color import luminance
from taskfuse.data.deflate import deflate_literals, zlib_from_packed
from taskfuse.data.io import (
    FORMATS,
    IMAGE_SUFFIXES,
    LOSSY,
    PNG_LEVEL,
    QUALITY,
    as_chw,
    decode_ir,
    decode_vi,
    encode_image,
    image_size,
    ir_array,
    png_from_scanlines,
    png_from_zlib,
    png_scanlines,
    quantize,
    remove_parts,
    to_unit,
    writable_folder,
    write_image,
)
from taskfuse.data.manifest import MANIFEST, Manifest, changed, file_sha256, read_manifest, write_manifest
from taskfuse.data.pairs import SIZE_FIX, Pair, check_output, check_sizes, listing, size_mismatch
from taskfuse.data.video import VideoPair, VideoWriter, is_video_output
from taskfuse.device import GraphReplay, available_cpus, resolve_device
from taskfuse.errors import TaskfuseError
from taskfuse.models.base import FusionModel
from taskfuse.models.weights import load_model, read_meta
from taskfuse.nn.attention import ChannelAttention
from taskfuse.version import __version__
from taskfuse.workers import FORK, ForkedWorkers


def load(
    method: str | None = None, weights: str | os.PathLike | None = None, device: str = "cpu", **cfg: Any
) -> FusionModel:
    """A fusion model ready for inference: eval mode, on ``device``, and ``inference_only``, so that every
    call (``model(ir, vi)``, ``model.fuse_color(ir, vi)``) runs under ``torch.inference_mode``.

    With ``weights`` the method and its config come from the checkpoint (``method``, if given, must agree),
    ``cfg`` overriding config keys that leave the weights' shapes alone (``load(display="none")``: the
    default without its contrast-stretched display, ``taskfuse/models/lite/network.py``). Without, a method whose spec
    ships weights (the default, ``lite``) loads those; a classical rule is built with ``cfg``; any other learned
    method needs ``weights``. The model's ``source`` records the method, the weights file with its SHA-256, and
    ``cfg``: the identity a run manifest stores.
    """
    dev = resolve_device(device)
    name = (method or models.DEFAULT_METHOD).lower()
    if weights is None and models.get(name).weights is not None:
        weights = models.get(name).weights
    if weights is not None:
        stored = read_meta(weights).get("method")
        if method is not None and stored and method.lower() != stored.lower():
            raise TaskfuseError(f"{weights} holds weights of {stored!r}, not {method!r}; drop --method or fix it")
        model = load_model(weights, dev, **cfg)
        name = stored
    else:
        if models.get(name).learned:
            raise TaskfuseError(
                f"method {method!r} is a learned network and needs trained weights: pass --weights FILE.safetensors"
            )
        model = models.create(name, **cfg).to(dev).eval()
    model.inference_only = True
    model.source = {
        "method": name,
        "weights": str(Path(weights).resolve()) if weights is not None else None,
        "weights_sha256": file_sha256(weights) if weights is not None else None,
        "config": json.loads(json.dumps(cfg)),
    }
    return model


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

    ``halo`` is ``overlap`` raised to the context the model declares (``FusionModel.context``: the classical
    multi-scale rules and the default network know their receptive field, which makes tiling them exact rather
    than approximate), rounded up to ``align``.
    """
    need, align = model.context
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

    Every window (core plus context, clipped to the image) goes through ``model.fuse_window``, so colour is
    handled exactly as untiled (luminance fused, VIS chroma recombined per pixel), and only the core is kept;
    ``model.finish`` (a whole-image step such as a contrast stretch) then runs once on the assembled image.
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
            part = model.fuse_window(ir[None, :, win_y, win_x].to(dev), vi[None, :, win_y, win_x].to(dev))[0]
            if out is None:
                out = torch.empty(part.shape[0], h, w, dtype=part.dtype)
            out[:, core_y, core_x] = part[:, local_y, local_x].cpu()
    assert out is not None
    return model.finish(out[None])[0]


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


def check_tile(tile: Tile, overlap: int) -> None:
    """Raise ``TaskfuseError`` naming the option unless ``tile`` and ``overlap`` are valid for ``fuse_tensors``."""
    if not (tile is None or tile == "auto" or (isinstance(tile, int) and tile > 0)):
        raise TaskfuseError(
            f"tile must be a positive number of pixels, 'auto' or None (--tile N|auto|off), got {tile!r}"
        )
    if overlap < 0:
        raise TaskfuseError(f"tile overlap must be >= 0 pixels (--tile-overlap), got {overlap}")


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
    check_tile(tile, overlap)
    dev = device or model_device(model)
    if tile == "auto":
        return _fuse_auto(model, ir, vi, dev, overlap)
    if tile is None:
        return model.fuse_color(ir[None].to(dev), vi[None].to(dev))[0].cpu()
    return fuse_tiled(model, ir, vi, tile, *tile_context(model, overlap), dev)


@dataclass(frozen=True)
class FuseOptions:
    """Every choice of a fusing run that changes the fused pixels, all compared by the run manifest but
    ``ir_colour``, which only decides whether false-colour images are fused at all (an image fused under both
    settings is the same).

    ``ext``: output format (``.png``, ``.jpg``, ``.bmp``, ``.tif``, ``.webp``); ``resize``: the side (``"vi"``
    or ``"ir"``) resized when a pair differs in size, None to refuse such pairs; ``ir_range`` and
    ``ir_colour``: how infrared values are read (``taskfuse.data.io.read_ir``); ``gray``: write the fused
    luminance Y (BT.601) instead of colour; ``tile`` and ``overlap``: as in ``fuse_tensors``; ``png_level``:
    zlib level of PNG outputs (0..9; the pixels are the same at every level, so the manifest records it
    under ``info``); ``quality``: of JPEG and WebP outputs (1..100; a setting for those formats only).
    """

    ext: str = ".png"
    resize: str | None = None
    ir_range: str = "auto"
    ir_colour: str = "error"
    gray: bool = False
    tile: Tile = "auto"
    overlap: int = 32
    png_level: int = PNG_LEVEL
    quality: int = QUALITY

    def check(self) -> None:
        """Raise ``TaskfuseError`` naming the option of any value out of range."""
        check_tile(self.tile, self.overlap)
        if self.resize not in (None, "vi", "ir"):
            raise TaskfuseError(f"resize must be 'vi' or 'ir', got {self.resize!r}")
        if not 0 <= self.png_level <= 9:
            raise TaskfuseError(f"PNG compression level must be 0..9 (--png-level), got {self.png_level}")
        if not 1 <= self.quality <= 100:
            raise TaskfuseError(f"quality must be 1..100 (--quality), got {self.quality}")

    def settings(self, model: FusionModel) -> dict[str, Any]:
        """The manifest's ``settings``: these options and the model's identity (``FusionModel.source``).

        A model not made by ``load`` has no known identity: its ``method`` is None, which matches nothing,
        so its results are never resumed. ``quality`` is a setting of lossy formats only.
        """
        source = model.source or {}
        lossy = {"quality": self.quality} if self.ext in LOSSY else {}
        return {
            "method": source.get("method"),
            "weights_sha256": source.get("weights_sha256"),
            "config": source.get("config"),
            "ir_range": self.ir_range,
            "resize": self.resize,
            "tile": self.tile,
            "tile_overlap": self.overlap,
            "ext": self.ext,
            "gray": self.gray,
            **lossy,
        }


def _stored_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """A stored manifest's settings in today's terms: manifests written before ``quality`` was a setting
    hold JPEG outputs of quality 95, the one quality those versions wrote."""
    if settings.get("ext") in LOSSY and "quality" not in settings:
        return {**settings, "quality": 95}
    return settings


OPTIONS = {
    "method": "--method",
    "weights_sha256": "--weights",
    "config": "--set",
    "ir_range": "--ir-range",
    "resize": "--resize",
    "tile": "--tile",
    "tile_overlap": "--tile-overlap",
    "ext": "--ext",
    "gray": "--gray",
    "quality": "--quality",
}
"""How each manifest setting is written on the command line, for messages."""


def _shown(key: str, settings: dict[str, Any], info: dict[str, Any]) -> str:
    """One setting as the command line writes it (``--method mean``, ``--weights x.safetensors``)."""
    value = settings.get(key)
    if key == "weights_sha256":
        return f"--weights {Path(info.get('weights') or '?').name} (SHA-256 {value[:12]})" if value else "no --weights"
    if key == "method" and value is None:
        return "a model not loaded with taskfuse.load (its identity is unknown)"
    if key == "gray":
        return "--gray" if value else "colour output"
    if key == "tile":
        return f"--tile {'off' if value is None else value}"
    if key == "ext":
        return f"--ext {str(value).lstrip('.')}"
    if key == "resize" and value is None:
        return "no --resize"
    if key == "config":
        return " ".join(f"--set {k}={v}" for k, v in value.items()) if value else "no --set"
    return f"{OPTIONS.get(key, key)} {value}"


def decode_pair(pair: Pair, options: FuseOptions) -> tuple[Tensor, Tensor]:
    """Decode one pair for the model: (1, H, W) IR and (1|3, H, W) VIS of one size, uint8 levels where the
    files hold 8 bits (``taskfuse.data.io.to_unit`` divides them where the model runs), float32 in [0, 1]
    otherwise. The tensors are views of the decoded arrays: VIS lies channel-last in memory."""
    ir, vi = decode_ir(pair.ir, options.ir_range, options.ir_colour), decode_vi(pair.vi)
    return _model_inputs(pair.name, as_chw(ir), as_chw(vi), options.resize)


def decoded_arrays(pair: Pair, options: FuseOptions) -> tuple[np.ndarray, np.ndarray]:
    """``decode_pair`` as arrays, IR (H, W) and VIS (H, W[, C]) channel-last, which pickle without torch: what a
    worker process hands back, copied once through its pipe (``as_chw`` makes ``decode_pair``'s tensors again)."""
    return _channels_last(*decode_pair(pair, options))


def _channels_last(ir: Tensor, vi: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Model inputs (1, H, W) and (C, H, W) as arrays (H, W) and (H, W, C): views of the memory they lie in."""
    return ir[0].numpy(), vi.permute(1, 2, 0).numpy()


def _model_inputs(name: str, ir: Tensor, vi: Tensor, resize: str | None) -> tuple[Tensor, Tensor]:
    """Decoded IR and VIS of one size: as they are when the sizes agree, else resized (``_match_size``)."""
    if ir.shape[-2:] == vi.shape[-2:]:
        return ir, vi
    if resize is None:
        raise TaskfuseError(
            f"sizes differ: {name} (ir {ir.shape[-1]}x{ir.shape[-2]}, vi {vi.shape[-1]}x{vi.shape[-2]}). " + SIZE_FIX
        )
    return _match_size(to_unit(ir), to_unit(vi), resize)


def frame_name(index: int) -> str:
    """The name of a video's fused frame ``index`` (``000042``), for frame folders."""
    return f"{index:06d}"


def read_pair(pair: Pair, options: FuseOptions) -> tuple[Tensor, Tensor]:
    """Decode one pair as the model takes it: (1, H, W) IR and (1|3, H, W) VIS float32 of one size."""
    ir, vi = decode_pair(pair, options)
    return to_unit(ir).contiguous(), to_unit(vi).contiguous()


def fuse_pair(
    model: FusionModel, ir: Tensor, vi: Tensor, options: FuseOptions, device: torch.device | None = None
) -> Tensor:
    """The image to write for one decoded pair: colour (or gray for a gray VIS), or Y with ``options.gray``."""
    fused = fuse_tensors(model, to_unit(ir), to_unit(vi), device, options.tile, options.overlap)
    return luminance(fused) if options.gray else fused


def batch_levels(fused: Tensor, gray: bool = False) -> Tensor:
    """Fused images (B, C, H, W) in [0, 1] -> the uint8 levels to write (B, H, W, C): luminance with ``gray``."""
    return quantize(luminance(fused) if gray else fused).permute(0, 2, 3, 1).contiguous()


def default_batch(device: torch.device) -> int:
    """Pairs per forward pass when none is asked for: 16 on CUDA, where one pair leaves most of the GPU idle;
    1 elsewhere, where a batch is no faster per pair and only holds more memory."""
    return 16 if device.type == "cuda" else 1


PROCESS_PAIRS = 1000
"""Image pairs to fuse from which a run on a GPU uses worker processes by default (``default_processes``)."""

DEFLATED_WRITERS = 2
"""Encoding threads at most when the GPU deflates the PNG files (``FuseJob.encoding_threads``): on an H100 host
of 16 cores, 2408 MSRS pairs to PNG files in one warmed process, 8 decoding processes, three rounds: 8 encoding
threads 402.9-407.8 pairs/s, 2 threads 553.1-558.2, 1 thread 557.6-559.2; 2 threads gave 1.19x and 1.26x the
pairs/s of 8 on two slower hosts (``docs/performance.md``). Two keep one file's write from waiting on another's."""


def default_processes(device: torch.device, pairs: int) -> bool:
    """Whether a run of ``pairs`` image pairs decodes, encodes and writes in worker processes when not told: on
    a GPU, where one interpreter lock shared by the calling thread and every pool thread bounds the run, from
    ``PROCESS_PAIRS`` pairs on, where fork is offered. Starting the 16 processes of 8 workers of each kind (8
    when the GPU deflates the PNG files, which leaves nothing to write in processes) costs the run about
    0.1-0.2 s: on an H100 host of 16 cores, 640 x 480 PNG pairs to PNG files written by zlib, in one process after
    warming up, threads fused 301 pairs faster (455-482 pairs/s against 392-399), 602 as fast (476-496 against
    474-477) and 1204 slower (494-515 against 545-568). With the GPU deflating, a fresh process on another host
    fused 2408 pairs at 452.5 pairs/s, then 504.8 in a second run, with processes, and 365.6, then 406.3, with
    threads; on 301 pairs threads fused 410 pairs/s against 341 (``docs/performance.md``)."""
    return device.type == "cuda" and FORK and pairs >= PROCESS_PAIRS


def default_workers(deflating_processes: bool = False) -> int:
    """Decoding and encoding workers when none are asked for: one per CPU this process may use, at most 8: on 16
    cores, 8 threads of each kind fused 410 pairs/s to PNG files where 16 fused 380, and 8 also won the earlier
    sweep (``docs/performance.md``). With ``deflating_processes`` (worker processes decode for a GPU that deflates
    the PNG files, leaving at most ``DEFLATED_WRITERS`` encoding threads), decoding bounds the run, so the
    decoding processes take the CPUs that the calling thread, the encoding threads and one more leave, at least
    as many and at most 12: on two H100 hosts of 16 cores, 2408 pairs with replayed batches, 12 fused 461-615
    pairs/s against 399-492 with 8, and on one of them 16 fused 417-447 against 463-497 with 12 (3 encoding
    threads each)."""
    cpus = available_cpus()
    if deflating_processes:
        return max(min(8, cpus), min(12, cpus - DEFLATED_WRITERS - 2))
    return min(8, cpus)


def is_output_file(out: str | os.PathLike) -> bool:
    """Whether ``out`` names one output image (an image suffix, and not an existing folder)."""
    out = Path(out)
    return out.suffix.lower() in IMAGE_SUFFIXES and not out.is_dir()


@dataclass
class FuseSummary:
    written: int
    skipped: int
    seconds: float
    failed: list[tuple[str, str]] = field(default_factory=list)
    """(pair name, why) of every pair left out under ``keep_going``."""
    unit: str = "image"
    """What a pair is: an image, or a video frame."""
    main: dict[str, float] = field(default_factory=dict)
    """Seconds the calling thread spent waiting for decoded pairs (``decode``), fusing (``fuse``: stacking the
    batches, the forward passes and whatever they wait for on the device), waiting for outputs to be encoded
    (``encode``; image files are also written there, by the encoding threads) and writing video frames
    (``write``). A run that waits on one of them is held back by it."""
    main_cpu: dict[str, float] = field(default_factory=dict)
    """The calling thread's CPU seconds (``time.thread_time``) in each stage of ``main``, and in the whole run
    (``run``): what a stage's wall time holds beyond them the thread spent waiting (for a worker, the GPU, or the
    interpreter lock, which every pool thread of the process also takes)."""
    gpu: float | None = None
    """Seconds the GPU spent on the batches, each from before its copy to the GPU to after its copy back (CUDA
    events; the gaps where the GPU waited for the next launch inside a batch count too); None where no batch ran
    on a GPU. Near ``seconds``, the GPU bounds the run."""

    def line(self, out: Path) -> str:
        rate = self.written / self.seconds if self.seconds > 0 else 0.0
        failed = f", {len(self.failed)} failed" if self.failed else ""
        return (
            f"fused {self.written} {self.unit}(s), skipped {self.skipped} already done{failed}, in "
            f"{self.seconds:.2f} s ({rate:.2f} {self.unit}s/s) -> {out}"
        )


@dataclass
class _Fused:
    """Pairs fused together, their uint8 images (B, H, W, C) on the CPU, and the CUDA event after which
    those bytes are there (None when they already are; a blocking event, so that the encoding threads that
    wait for it sleep instead of spinning). With ``channels`` set, ``images`` holds instead the images'
    ``png_scanlines`` (B, H, 1 + W * channels), filtered where they were fused; with ``deflated``, the (H, W) of
    PNG images, their scanlines' deflate streams (``deflate_literals``), made where they were fused."""

    pairs: list[Pair]
    images: Tensor
    ready: torch.cuda.Event | None = None
    channels: int = 0
    deflated: tuple[int, int] | None = None


@dataclass
class FuseJob:
    """One model's pairs planned into one output (``plan_fuse``): nothing is written before ``start``.

    ``targets`` maps every pair to fuse to its output path; ``manifest`` is None for a single output file;
    ``stale`` lists images of other settings that ``start`` removes (``--overwrite``); ``batch`` is the
    number of pairs of one size fused together and ``workers`` the decoding and the encoding threads each.
    With ``video`` the pairs are that video pair's frames (named by ``frame_name``), fused into a frame
    folder, or with an ``out`` video file (no manifest) into that video, encoded by ``codec``. With
    ``processes`` the pairs are decoded, and the images encoded and written, in ``workers`` worker processes of
    each kind (``worker_processes``), the threads only handing them over. ``encoders`` sets the encoding threads
    apart from ``workers`` (default: ``encoding_threads``' choice).
    """

    model: FusionModel
    out: Path
    options: FuseOptions
    pairs: list[Pair]
    targets: dict[str, Path]
    skipped: int
    failed: list[tuple[str, str]]
    manifest: Manifest | None
    stale: list[Path]
    keep_going: bool
    device: torch.device | None
    batch: int = 1
    workers: int = 1
    video: VideoPair | None = None
    codec: str | None = None
    processes: bool = False
    encoders: int | None = None

    def start(self) -> None:
        """Make the output folder, remove what killed runs and replaced settings left, write the manifest.

        Raises ``TaskfuseError`` when the output cannot be written, before any image is fused.
        """
        folder = self.out if self.manifest is not None else self.out.parent
        writable_folder(folder)
        if self.manifest is None:
            remove_parts(folder, name=self.out.name)
            return
        remove_parts(folder, recursive=True)
        for path in self.stale:
            path.unlink(missing_ok=True)
        try:
            write_manifest(folder, self.manifest)
        except OSError as e:
            raise TaskfuseError(f"--out {folder}: cannot write the run manifest ({e.strerror or e})") from e

    def run(self, progress: bool = True) -> FuseSummary:
        """Fuse every planned pair: decode ahead in threads, fuse pairs of one size in batches, and encode
        and write each output atomically in threads (video frames: encode in threads, write in order); with
        ``processes`` the threads hand the decoding, encoding and writing to worker processes.

        A pair that cannot be read or fused raises (after writing the pairs before it), or with
        ``keep_going`` is listed in ``failed``; an output that cannot be written always raises. An
        interruption leaves only whole outputs: every image file is written atomically (``write_image``), the
        run returns only after the threads still writing one have finished it, and a video file is renamed
        into place only when complete.
        """
        failed = list(self.failed)
        start, start_cpu = time.perf_counter(), time.thread_time()
        unit = "frame" if self.video is not None else "img"
        shown = None if progress else True
        with ExitStack() as outputs, host_threads(self.device or model_device(self.model)):
            readers: Executor
            writers: Executor | None = None
            if self.processes:
                size, ahead = pair_bytes(self.pairs[0]) if self.pairs else 0, self.ahead
                readers = outputs.enter_context(worker_processes(self.workers, size, ahead + 2 * self.batch + 2))
                if not self.deflates:
                    writers = outputs.enter_context(worker_processes(self.workers, size, ahead + self.batch, False))
            else:
                readers = ThreadPoolExecutor(1 if self.video else self.workers, thread_name_prefix="taskfuse-decode")
            bar = tqdm(total=len(self.pairs), desc="fuse", unit=unit, disable=shown, dynamic_ncols=True)
            encoders = ThreadPoolExecutor(self.encoding_threads, thread_name_prefix="taskfuse-encode")
            try:
                pipeline = _Pipeline(self, encoders, bar, *self._outputs(outputs, writers))
                for pair, decoded in self._decoded(readers):
                    try:
                        with pipeline.timed("decode"):
                            ir, vi = (as_chw(image) for image in decoded.result())
                    except TaskfuseError as e:
                        if not self.keep_going:
                            pipeline.finish()
                            raise
                        failed.append((pair.name, str(e)))
                        bar.update()
                        continue
                    failed += pipeline.add(pair, ir, vi)
                failed += pipeline.finish()
            finally:
                _drain(readers, encoders)
                bar.close()
        seconds = time.perf_counter() - start
        kind = "frame" if self.video else "image"
        main_cpu = {**pipeline.main_cpu, "run": time.thread_time() - start_cpu}
        gpu = pipeline.gpu_seconds()
        return FuseSummary(pipeline.written, self.skipped, seconds, failed, kind, dict(pipeline.main), main_cpu, gpu)

    def _outputs(
        self, stack: ExitStack, writers: Executor | None = None
    ) -> tuple[Callable[[_Fused, int], Any], Callable[[Pair, Any], None] | None]:
        """What an encoding thread does with a fused image, and what the calling thread then does with its
        result, in order: an image file per pair is encoded and written (``write_output``) in the thread, or by
        ``writers`` while the thread waits, or (deflated on the GPU) put together and written in the thread;
        nothing is left to do in order. A frame of the output video, whose writer ``stack`` closes, is converted
        in the thread and written in order."""
        options = self.options
        if self.video is not None and self.manifest is None:
            size = self.video.size(options.resize)
            writer = stack.enter_context(VideoWriter(self.out, self.video.rate, *size, self.codec))

            def write_frame(pair: Pair, frame: Any) -> None:
                try:
                    writer.write(frame)
                except OSError as e:
                    raise TaskfuseError(f"{self.out}: cannot write the fused video ({e.strerror or e})") from e

            return (lambda fused, i: writer.convert(_levels(fused, i, rgb=True))), write_frame

        def encode_and_write(fused: _Fused, i: int) -> None:
            target = self.targets[fused.pairs[i].name]
            if fused.deflated:
                write_output(target, _png(fused, i), 0, options)
                return
            image = _host(fused, i) if fused.channels else _levels(fused, i)
            if writers is None:
                write_output(target, image, fused.channels, options)
            else:
                writers.submit(write_output, target, image, fused.channels, options).result()

        return encode_and_write, None

    @property
    def ahead(self) -> int:
        """Pairs decoded ahead of the model, and outputs queued for encoding, at most: enough to keep every
        thread of each kind busy while a batch fills. Worker processes get a shared slot for every pair or output
        held at once: these, plus the pairs waiting in their groups (up to twice a batch) and the pair in hand, or
        plus the batch just queued."""
        return 2 * (self.batch + self.workers)

    @property
    def encoding_threads(self) -> int:
        """Threads encoding and writing the outputs: ``encoders`` where set, else ``workers``, or at most
        ``DEFLATED_WRITERS`` when the GPU deflates the PNG files, leaving each thread only a file's chunks and its
        write: more such threads only take the interpreter lock from the calling thread."""
        if self.encoders is not None:
            return self.encoders
        return min(self.workers, DEFLATED_WRITERS) if self.deflates else self.workers

    @property
    def deflates(self) -> bool:
        """Whether the PNG files are deflated on the GPU (``taskfuse.data.deflate``): at level 1, whose Huffman
        codes alone the GPU makes for a whole batch at once, leaving the encoding threads only the file's
        chunks and its write. The pixels are those of the CPU's encoder, the bytes not (a few per cent larger)."""
        device = self.device or model_device(self.model)
        return device.type == "cuda" and self.png_files and self.options.png_level == 1

    @property
    def png_files(self) -> bool:
        """Whether the outputs are PNG files (images or a video's frames, not a video file): on a GPU their
        scanlines are filtered there (``png_scanlines``), leaving the encoding threads only the deflate."""
        return FORMATS.get(self.options.ext.lower()) == "PNG" and not (self.video is not None and self.manifest is None)

    def _decoded(self, readers: Executor) -> Iterator[tuple[Pair, Future]]:
        """Every pair with the future of its ``decoded_arrays``, in order, keeping a bounded number decoded ahead
        (video frames one after the other in a single thread, as a stream decodes)."""
        ahead: deque[tuple[Pair, Future]] = deque()
        depth = self.ahead
        if self.video is not None:
            frames = self._frames()
            while True:
                while len(ahead) < depth:
                    ahead.append((None, readers.submit(next, frames, None)))
                item = ahead.popleft()[1].result()
                if item is None:
                    return
                pair, decoded = item
                done: Future = Future()
                done.set_result(decoded)
                yield pair, done
        for pair in self.pairs:
            ahead.append((pair, readers.submit(decoded_arrays, pair, self.options)))
            if len(ahead) >= depth:
                yield ahead.popleft()
        yield from ahead

    def _frames(self) -> Iterator[tuple[Pair, tuple[np.ndarray, np.ndarray]]]:
        """The planned frame pairs of ``video``, decoded as ``decoded_arrays`` decodes image pairs."""
        assert self.video is not None
        todo = {pair.name: pair for pair in self.pairs}
        options = self.options
        for i, ir, vi in self.video.pairs():
            pair = todo.get(frame_name(i))
            if pair is not None:
                source = f"{self.video.ir_path} frame {i}"
                ir_levels = as_chw(ir_array(ir, options.ir_range, options.ir_colour, source))
                yield pair, _channels_last(*_model_inputs(pair.name, ir_levels, as_chw(vi), options.resize))


class _Pipeline:
    """The fusing side of ``FuseJob.run``: batches by size, fuses, hands each output to the encoding threads and
    collects them in order (writing the frames of a video)."""

    def __init__(
        self,
        job: FuseJob,
        encoders: ThreadPoolExecutor,
        bar: tqdm,
        encode: Callable[[_Fused, int], Any],
        write: Callable[[Pair, Any], None] | None,
    ) -> None:
        self.job, self.encoders, self.bar, self.encode, self.write = job, encoders, bar, encode, write
        self.device = job.device or model_device(job.model)
        self.deflates = job.deflates
        """``FuseJob.deflates``, decided once for the run rather than for every batch."""
        learned = next(job.model.parameters(), None) is not None
        self.images = GraphReplay(self._images) if self.device.type == "cuda" and learned else self._images
        """A batch's work on a GPU (``_images``): for a network, replayed from a CUDA graph per batch shape
        (``GraphReplay``), which leaves the calling thread one launch where a forward pass has hundreds."""
        self.align = tile_context(job.model, job.options.overlap)[1]
        self.groups: dict[tuple, list[tuple[Pair, Tensor, Tensor]]] = {}
        self.encoded: deque[tuple[Pair, Future]] = deque()
        self.written = 0
        self.main = dict.fromkeys(("decode", "fuse", "encode", "write"), 0.0)
        """``FuseSummary.main``, so far."""
        self.main_cpu = dict.fromkeys(self.main, 0.0)
        """``FuseSummary.main_cpu``'s stages, so far."""
        self.batches_on_gpu: list[tuple[torch.cuda.Event, torch.cuda.Event]] = []
        """The CUDA events before each batch's copy to the GPU and after its copy back (``FuseSummary.gpu``)."""

    def add(self, pair: Pair, ir: Tensor, vi: Tensor) -> list[tuple[str, str]]:
        """Take one decoded pair; fuse its group when it is full. Returns the pairs that failed."""
        h, w = ir.shape[-2:]
        if not self._whole(h, w):
            return self._fuse([(pair, ir, vi)], batched=False)
        key = (tuple(ir.shape), tuple(vi.shape), ir.dtype, vi.dtype)
        group = self.groups.setdefault(key, [])
        group.append((pair, ir, vi))
        failed = []
        if len(group) >= self.job.batch:
            failed += self._fuse(self.groups.pop(key))
        if sum(map(len, self.groups.values())) > 2 * self.job.batch:
            failed += self._fuse(self.groups.pop(max(self.groups, key=lambda k: len(self.groups[k]))))
        self._collect(wait=len(self.encoded) > self.job.ahead)
        return failed

    def finish(self) -> list[tuple[str, str]]:
        """Fuse what is left in the groups and write everything encoded."""
        failed = []
        while self.groups:
            failed += self._fuse(self.groups.pop(next(iter(self.groups))))
        while self.encoded:
            self._collect(wait=True)
        return failed

    @contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        """Add the wall and CPU seconds the block takes to ``stage`` of ``main`` and ``main_cpu``."""
        start, cpu = time.perf_counter(), time.thread_time()
        try:
            yield
        finally:
            self.main[stage] += time.perf_counter() - start
            self.main_cpu[stage] += time.thread_time() - cpu

    def gpu_seconds(self) -> float | None:
        """``FuseSummary.gpu``: the seconds between each batch's two events, summed (None without a batch on a
        GPU)."""
        if not self.batches_on_gpu:
            return None
        for _, ready in self.batches_on_gpu:
            ready.synchronize()
        return sum(started.elapsed_time(ready) for started, ready in self.batches_on_gpu) / 1e3

    def _whole(self, h: int, w: int) -> bool:
        """Whether ``fuse_tensors`` fuses an h x w pair in one pass under the job's tiling (so it may join a
        batch) rather than in tiles."""
        tile = self.job.options.tile
        if tile is None:
            return True
        if tile == "auto":
            return self.device.type == "cuda" or h * w <= AUTO_PIXELS
        return _round_up(tile, self.align) >= max(h, w)

    def _fuse(self, items: list[tuple[Pair, Tensor, Tensor]], batched: bool = True) -> list[tuple[str, str]]:
        """Fuse ``items`` as one batch, or one by one when ``batched`` is False or the batch fails (CUDA out
        of memory, where a single pair may still fit or tile), and queue their encoding."""
        with self.timed("fuse"):
            if batched:
                try:
                    self._encode(self._batch(items))
                    return []
                except (torch.cuda.OutOfMemoryError, TaskfuseError):
                    if self.device.type == "cuda":
                        torch.cuda.empty_cache()
            failed = []
            for pair, ir, vi in items:
                try:
                    fused = fuse_pair(self.job.model, ir, vi, self.job.options, self.device)
                except TaskfuseError as e:
                    if not self.job.keep_going:
                        raise
                    failed.append((pair.name, str(e)))
                    self.bar.update()
                    continue
                self._encode(_Fused([pair], quantize(fused).permute(1, 2, 0)[None]))
            return failed

    def _batch(self, items: list[tuple[Pair, Tensor, Tensor]]) -> _Fused:
        """One forward pass over pairs of one size: stacked (in pinned memory on CUDA, VIS channel-last as
        decoded), copied asynchronously, fused, rounded to levels on the device (on a GPU, for PNG files, also
        filtered into their scanlines) and copied back. On the CPU the
        pairs of a batch go through the model one at a time: its convolution backend picks a summation order by
        batch size, which moved single 8-bit values of the default network between batches of 1 and 8, and a
        batch is no faster per pair there."""
        cuda = self.device.type == "cuda"
        ir = _stack([ir for _, ir, _ in items], cuda)
        vi = _stack([vi.permute(1, 2, 0) for _, _, vi in items], cuda).permute(0, 3, 1, 2)
        pairs = [pair for pair, _, _ in items]
        if not cuda:
            vi = vi.contiguous()
            fused = torch.cat([self.job.model.fuse_batch(ir[i : i + 1], vi[i : i + 1]) for i in range(len(items))])
            return _Fused(pairs, batch_levels(fused, self.job.options.gray))
        started = _recorded(blocking=False)
        ir, vi = ir.to(self.device, non_blocking=True), vi.to(self.device, non_blocking=True).contiguous()
        images = self.images(ir, vi)
        deflated = (ir.shape[-2], ir.shape[-1]) if self.deflates else None
        channels = (images.shape[-1] - 1) // ir.shape[-1] if self.job.png_files and not deflated else 0
        host = torch.empty(images.shape, dtype=images.dtype, pin_memory=True)
        host.copy_(images, non_blocking=True)
        ready = _recorded(blocking=True)
        self.batches_on_gpu.append((started, ready))
        return _Fused(pairs, host, ready, channels, deflated)

    def _images(self, ir: Tensor, vi: Tensor) -> Tensor:
        """What a batch on a GPU sends back to the host: its levels, or for PNG files their ``png_scanlines``,
        deflated at level 1 (``FuseJob.deflates``)."""
        levels = batch_levels(self.job.model.fuse_batch(ir, vi), self.job.options.gray)
        if not self.job.png_files:
            return levels
        return deflate_literals(png_scanlines(levels)) if self.deflates else png_scanlines(levels)

    def _encode(self, fused: _Fused) -> None:
        for i, pair in enumerate(fused.pairs):
            self.encoded.append((pair, self.encoders.submit(self.encode, fused, i)))

    def _collect(self, wait: bool) -> None:
        """Collect the outputs at the head of the queue, writing those the threads leave to this one: all
        finished ones, and with ``wait`` at least the first."""
        while self.encoded and (wait or self.encoded[0][1].done()):
            pair, future = self.encoded.popleft()
            with self.timed("encode"):
                data = future.result()
            if self.write is not None:
                with self.timed("write"):
                    self.write(pair, data)
            self.written += 1
            self.bar.update()
            wait = False


def write_output(target: Path, image: np.ndarray | bytes, channels: int, options: FuseOptions) -> None:
    """Encode one fused image for its file and write it atomically: ``image`` is its uint8 levels (H, W[, C]),
    with ``channels`` its ``png_scanlines``, or already the file's bytes."""
    if isinstance(image, bytes):
        data = image
    elif channels:
        data = png_from_scanlines(image, channels, options.png_level)
    else:
        data = encode_image(image, options.ext, options.png_level, options.quality)
    try:
        write_image(target, data)
    except OSError as e:
        raise TaskfuseError(f"{target}: cannot write the fused image ({e.strerror or e})") from e


def pair_bytes(pair: Pair) -> int:
    """Bytes a decoded pair of 8-bit images the size of ``pair``'s larger image takes (IR, and VIS in three
    channels), each array aligned as ``ForkedWorkers`` lays them out: the slot size of ``worker_processes``, which
    also holds the pair's output. Pairs of other sizes or of more bits (decoded to float32) that do not fit a slot
    go through the pipe."""
    pixels = max(math.prod(image_size(pair.ir)), math.prod(image_size(pair.vi)))
    return 4 * pixels + 128


@contextmanager
def worker_processes(
    count: int, slot_bytes: int = 0, slots: int = 0, slot_results: bool = True
) -> Iterator[ForkedWorkers]:
    """``count`` worker processes forked from this one (``taskfuse.workers.ForkedWorkers``), all started at once,
    before the run starts its own threads, the arrays they take (and with ``slot_results`` give back) going
    through ``slots`` shared slots of ``slot_bytes``; on leaving, their queued work is cancelled and their
    running work (a file being written) finished.

    Each has its own interpreter lock, where threads share one: a batch of 16 that took the calling thread
    17.3 ms alone took 39.9 ms while 8 decoding and 8 encoding threads were busy in the same process (eager
    forward passes on an H100, ``docs/performance.md``). The workers never touch the GPU (a forked child
    cannot), and leave an interruption to this process, which finishes their running work before it returns.
    Where fork is not offered (Windows) this raises ``TaskfuseError``, as ``plan_fuse`` does before anything is
    written.
    """
    pool = ForkedWorkers(count, slot_bytes, slots, slot_results, initializer=_worker_start)
    try:
        yield pool
    finally:
        _drain(pool)


def _worker_start() -> None:
    """A worker process leaves interruptions and termination to its parent, which ends it once its running work
    is done, and runs torch's CPU work (resizing) on one thread."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    torch.set_num_threads(1)


def _drain(*pools: Executor) -> None:
    """Cancel each pool's queued work and wait for its running work, in turn, through any further interruption
    (raised again after): a thread or worker process may be writing an output, which is whole before the run
    returns."""
    interrupted = None
    for pool in pools:
        while True:
            try:
                pool.shutdown(wait=True, cancel_futures=True)
                break
            except KeyboardInterrupt as e:
                interrupted = e
    if interrupted is not None:
        raise interrupted


@contextmanager
def host_threads(device: torch.device) -> Iterator[None]:
    """One intra-op thread for torch's CPU work while a pipeline feeds a GPU, the previous count after.

    There the CPU side only stacks and copies, while the decoding and encoding pools keep every core busy; torch's
    own pool of one thread per core would only compete with them (its threads wait for work by spinning). Runs
    on the CPU keep the count as it is: the network runs there."""
    if device.type != "cuda":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _stack(tensors: list[Tensor], pinned: bool) -> Tensor:
    """``torch.stack``, into page-locked memory when ``pinned`` (for asynchronous copies to a GPU)."""
    first = tensors[0]
    out = torch.empty((len(tensors), *first.shape), dtype=first.dtype, pin_memory=pinned)
    return torch.stack(tensors, out=out)


def _recorded(blocking: bool) -> torch.cuda.Event:
    """A timing CUDA event recorded on the current stream; ``blocking``: a thread that waits for it sleeps."""
    event = torch.cuda.Event(enable_timing=True, blocking=blocking)
    event.record()
    return event


def _host(fused: _Fused, i: int) -> np.ndarray:
    """Image ``i`` of a fused batch as it lies on the CPU, once its bytes are there (runs in an encoding thread)."""
    if fused.ready is not None:
        fused.ready.synchronize()
    return fused.images[i].numpy()


def _png(fused: _Fused, i: int) -> bytes:
    """The PNG file of image ``i`` of a batch deflated on the GPU, once its stream is on the CPU (runs in an
    encoding thread)."""
    assert fused.deflated is not None
    height, width = fused.deflated
    stream, n = zlib_from_packed(_host(fused, i))
    return png_from_zlib(stream, height, width, (n // height - 1) // width)


def _levels(fused: _Fused, i: int, rgb: bool = False) -> np.ndarray:
    """Image ``i`` of a fused batch as uint8 (H, W) or (H, W, 3), once its bytes are on the CPU (runs in an
    encoding thread); ``rgb`` repeats a gray image into three channels."""
    image = _host(fused, i)
    if image.shape[-1] == 1:
        return np.repeat(image, 3, axis=-1) if rgb else np.ascontiguousarray(image[..., 0])
    return np.ascontiguousarray(image)


def plan_fuse(
    model: FusionModel,
    pairs: Iterable[Pair],
    out: str | os.PathLike,
    options: FuseOptions = FuseOptions(),
    overwrite: bool = False,
    keep_going: bool = False,
    device: torch.device | None = None,
    batch: int | None = None,
    workers: int | None = None,
    video: VideoPair | None = None,
    codec: str | None = None,
    processes: bool | None = None,
) -> FuseJob:
    """Check everything about fusing ``pairs`` into ``out`` without writing: the output against the inputs,
    the pair sizes (headers), the run manifest against these settings, and what is already done.

    ``out`` is a folder receiving ``<name><ext>`` per pair, or with an image suffix one output file for a
    single pair (its suffix is then the format). In a folder, finished outputs are skipped when its manifest
    holds the same settings; other settings, or outputs without a manifest, raise unless ``overwrite``, which
    redoes every output and removes those of other settings. ``keep_going`` lists unreadable or mismatched
    pairs in ``failed`` instead of raising. ``device`` is where the job fuses (default: the model's);
    ``batch`` the pairs of one size per forward pass (default: ``default_batch``); ``workers`` the decoding
    and encoding workers (default: ``default_workers``, more decoders where worker processes feed a GPU that
    deflates). Neither changes the pixels on the CPU (tested);
    on CUDA the backend may pick other kernels for other batch sizes, which can change float rounding as a
    change of device does, so the manifest records both under ``info``.

    With ``video`` (``plan_video`` makes the pairs), ``out`` is a frame folder or a video file, which like a
    single image is replaced only with ``overwrite``; frame errors always stop the run. ``processes`` decodes,
    encodes and writes image pairs in forked worker processes (``worker_processes``) instead of threads, the same
    bytes (tested); it raises where fork is not offered, and for videos, whose frames are decoded in one thread.
    None (default) leaves the choice to ``default_processes``.
    """
    pairs, out = list(pairs), Path(out)
    options.check()
    dev = device or model_device(model)
    batch = default_batch(dev) if batch is None else batch
    if batch < 1 or (workers is not None and workers < 1):
        raise TaskfuseError(f"--batch and --workers must be at least 1, got {batch} and {workers}")
    if processes and (video is not None or not FORK):
        why = "video frames are decoded in order, in one thread" if video else "this platform cannot fork processes"
        raise TaskfuseError(f"--worker-processes: {why}; leave it out")
    single = is_output_file(out) or (video is not None and is_video_output(out))
    if single:
        if len(pairs) != 1 and video is None:
            raise TaskfuseError(f"--out {out} names one image but there are {len(pairs)} pairs; give an output folder")
        if video is None:
            options = replace(options, ext=out.suffix.lower())
        check_output(out, [pairs[0].ir, pairs[0].vi], inside=True)
        targets = {pairs[0].name: out} if video is None else {}
    else:
        if out.exists() and not out.is_dir():
            raise TaskfuseError(f"--out {out} is a file; give a folder for the fused images")
        check_output(out, {p.parent for pair in pairs for p in (pair.ir, pair.vi)}, inside=True)
        targets = {p.name: out / f"{p.name}{options.ext}" for p in pairs}
    done = {name for name, path in targets.items() if path.exists()}
    manifest, stale = None, []
    if single:
        if (done or out.exists()) and not overwrite:
            raise TaskfuseError(f"--out {out} exists; pass --overwrite to replace it, or name another file")
    else:
        manifest, stale = _manifest(model, out, options, targets, done, overwrite, dev, batch)
    todo = pairs if overwrite else [p for p in pairs if p.name not in done]
    skipped = len(pairs) - len(todo)
    failed: list[tuple[str, str]] = []
    if video is None:
        todo, failed = _check_sizes(todo, options.resize, keep_going)
    keep_going = keep_going and video is None
    if processes is None:
        processes = video is None and default_processes(dev, len(todo))
    job = FuseJob(model, out, options, todo, targets, skipped, failed, manifest, stale, keep_going, device, batch)
    workers = default_workers(processes and job.deflates) if workers is None else workers
    return replace(job, workers=workers, video=video, codec=codec, processes=processes)


def plan_video(
    model: FusionModel,
    ir: str | os.PathLike,
    vi: str | os.PathLike,
    out: str | os.PathLike,
    options: FuseOptions = FuseOptions(),
    overwrite: bool = False,
    device: torch.device | None = None,
    batch: int | None = None,
    workers: int | None = None,
    codec: str | None = None,
) -> FuseJob:
    """``plan_fuse`` for an infrared and a visible video (``taskfuse.data.video.VideoPair`` pairs their frames
    and checks durations and sizes first): into the video file ``out`` (a video suffix; the visible stream's
    frame rate; no audio), or into the folder ``out`` as one image per frame (``frame_name``), with the run
    manifest and resumable like any image folder."""
    pair = VideoPair(ir, vi, options.resize)
    pairs = [Pair(frame_name(i), pair.ir_path, pair.vi_path) for i in range(pair.frames)]
    if not pairs:
        raise TaskfuseError(f"--ir {ir} and --vi {vi}: no frames to pair; give videos with frames")
    return plan_fuse(model, pairs, out, options, overwrite, False, device, batch, workers, pair, codec)


def _manifest(
    model: FusionModel,
    out: Path,
    options: FuseOptions,
    targets: dict[str, Path],
    done: set[str],
    overwrite: bool,
    device: torch.device,
    batch: int,
) -> tuple[Manifest, list[Path]]:
    """The manifest to write into ``out`` and the images ``start`` removes (see ``plan_fuse``).

    Images made with other settings, and images at this run's output names that no manifest accounts for,
    are foreign: they raise, or with ``overwrite`` are removed before the first image is fused, so that an
    interrupted replacement never leaves old images under the new manifest.
    """
    settings = options.settings(model)
    planned = {name: path.relative_to(out).as_posix() for name, path in targets.items()}
    stored = read_manifest(out)
    made = {rel for rel in stored.outputs if (out / rel).exists()} if stored else set()
    unknown = sorted(planned[n] for n in done if planned[n] not in made)
    differ = changed(_stored_settings(stored.settings), settings) if stored and made else []
    if made and settings["method"] is None:
        differ = differ or ["method"]
    if unknown and not overwrite:
        raise TaskfuseError(
            f"--out {out} already holds {len(unknown)} of this run's outputs ({listing(unknown)}) that no "
            f"{MANIFEST} accounts for, so the settings they were made with are unknown; use a new folder, or "
            "--overwrite to replace them"
        )
    if differ and not overwrite:
        assert stored is not None
        was = ", ".join(_shown(k, stored.settings, stored.info) for k in differ)
        now = ", ".join(_shown(k, settings, model.source or {}) for k in differ)
        raise TaskfuseError(
            f"{out} holds results of {was} (this run: {now}); use a new folder, or --overwrite to replace them"
        )
    stale = sorted(set(unknown) | (made if differ else set())) if overwrite else []
    kept = set() if differ else made
    info = {
        "taskfuse_version": __version__,
        "ir_colour": options.ir_colour,
        "weights": (model.source or {}).get("weights"),
        "device": str(device),
        "batch": batch,
        "png_level": options.png_level,
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    return Manifest(settings, info, sorted(kept | set(planned.values()))), [out / rel for rel in stale]


def _check_sizes(pairs: list[Pair], resize: str | None, keep_going: bool) -> tuple[list[Pair], list[tuple[str, str]]]:
    """Pairs whose headers read and whose sizes agree (or ``resize``), and (name, why) of the others.

    Without ``keep_going`` an unreadable header raises at once and size mismatches raise together.
    """
    if not keep_going:
        check_sizes(pairs, resize)
        return pairs, []
    good, failed = [], []
    for pair in pairs:
        try:
            mismatch = None if resize else size_mismatch(pair)
        except TaskfuseError as e:
            failed.append((pair.name, str(e)))
            continue
        if mismatch:
            failed.append((pair.name, f"sizes differ: {mismatch}. {SIZE_FIX}"))
        else:
            good.append(pair)
    return good, failed


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
    *,
    gray: bool = False,
    ir_colour: str = "error",
    keep_going: bool = False,
    png_level: int = PNG_LEVEL,
    quality: int = QUALITY,
    batch: int | None = None,
    workers: int | None = None,
    processes: bool | None = None,
) -> FuseSummary:
    """Fuse every pair into ``out/<name><ext>`` (or the one file ``out``): ``plan_fuse``, then ``FuseJob.start``
    and ``FuseJob.run``.

    Sizes are checked from the file headers and the output against the inputs and its run manifest before
    anything is written, so bad input fails fast. Each output is written atomically: an interrupted or failed
    run leaves only complete files, and a rerun with the same settings resumes. ``device`` runs parameter-free
    rules on a GPU too (default: where the model's weights are); ``batch``, ``workers`` and ``processes`` are
    ``plan_fuse``'s. The other options are ``FuseOptions``'.
    """
    options = FuseOptions(ext, resize, ir_range, ir_colour, gray, tile, overlap, png_level, quality)
    job = plan_fuse(model, pairs, out, options, overwrite, keep_going, device, batch, workers, processes=processes)
    job.start()
    return job.run(progress)

"""Fusing images on disk: load a method, pair the files, fuse, write atomically, resume only identical work.

A run is planned before anything is written (``plan_fuse``: output against inputs, sizes, the run manifest
of ``taskfuse.data.manifest``), then started (``FuseJob.start``: folder, leftovers, manifest) and run pair by
pair (``read_pair`` -> ``fuse_pair`` -> ``write_image``).

Large pairs are fused in tiles (``fuse_tensors(..., tile=N | "auto")``): every tile is fused with ``overlap``
pixels of context on each side and only its centre is kept. For a model whose receptive field fits in that
context this reproduces the untiled output up to float rounding, borders included (see ``fuse_tiled``).
"""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from taskfuse import models
from taskfuse.data.color import luminance
from taskfuse.data.io import IMAGE_SUFFIXES, read_ir, read_vi, remove_parts, writable_folder, write_image
from taskfuse.data.manifest import MANIFEST, Manifest, changed, file_sha256, read_manifest, write_manifest
from taskfuse.data.pairs import SIZE_FIX, Pair, check_output, check_sizes, listing, size_mismatch
from taskfuse.device import resolve_device
from taskfuse.errors import TaskfuseError
from taskfuse.models.base import FusionModel
from taskfuse.models.classical import GuidedFilterFusion, LaplacianPyramidFusion
from taskfuse.models.weights import load_model, read_meta
from taskfuse.nn.attention import ChannelAttention
from taskfuse.version import __version__


def load(
    method: str | None = None, weights: str | os.PathLike | None = None, device: str = "cpu", **cfg: Any
) -> FusionModel:
    """A fusion model ready for inference: eval mode, on ``device``, and ``inference_only``, so that every
    call (``model(ir, vi)``, ``model.fuse_color(ir, vi)``) runs under ``torch.inference_mode``.

    With ``weights`` the method and its config come from the checkpoint (``method``, if given, must agree).
    Without, a method whose spec ships weights (the default, ``lite``) loads those; a classical rule is built
    with ``cfg``; any other learned method needs ``weights``. The model's ``source`` records the method, the
    weights file with its SHA-256, and ``cfg``: the identity a run manifest stores.
    """
    dev = resolve_device(device)
    name = (method or models.DEFAULT_METHOD).lower()
    if weights is None and models.get(name).weights is not None and not cfg:
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

    ``ext``: output format (``.png``, ``.jpg``, ``.bmp``, ``.tif``); ``resize``: the side (``"vi"`` or
    ``"ir"``) resized when a pair differs in size, None to refuse such pairs; ``ir_range`` and ``ir_colour``:
    how infrared values are read (``taskfuse.data.io.read_ir``); ``gray``: write the fused luminance Y
    (BT.601) instead of colour; ``tile`` and ``overlap``: as in ``fuse_tensors``.
    """

    ext: str = ".png"
    resize: str | None = None
    ir_range: str = "auto"
    ir_colour: str = "error"
    gray: bool = False
    tile: Tile = "auto"
    overlap: int = 32

    def settings(self, model: FusionModel) -> dict[str, Any]:
        """The manifest's ``settings``: these options and the model's identity (``FusionModel.source``).

        A model not made by ``load`` has no known identity: its ``method`` is None, which matches nothing,
        so its results are never resumed.
        """
        source = model.source or {}
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
        }


OPTIONS = {
    "method": "--method",
    "weights_sha256": "--weights",
    "config": "model config",
    "ir_range": "--ir-range",
    "resize": "--resize",
    "tile": "--tile",
    "tile_overlap": "--tile-overlap",
    "ext": "--ext",
    "gray": "--gray",
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
    return f"{OPTIONS.get(key, key)} {value}"


def read_pair(pair: Pair, options: FuseOptions) -> tuple[Tensor, Tensor]:
    """Decode one pair as the model takes it: (1, H, W) IR and (1|3, H, W) VIS of one size."""
    ir = read_ir(pair.ir, options.ir_range, options.ir_colour)
    return _match_size(ir, read_vi(pair.vi), options.resize)


def fuse_pair(
    model: FusionModel, ir: Tensor, vi: Tensor, options: FuseOptions, device: torch.device | None = None
) -> Tensor:
    """The image to write for one decoded pair: colour (or gray for a gray VIS), or Y with ``options.gray``."""
    fused = fuse_tensors(model, ir, vi, device, options.tile, options.overlap)
    return luminance(fused) if options.gray else fused


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

    def line(self, out: Path) -> str:
        rate = self.written / self.seconds if self.seconds > 0 else 0.0
        failed = f", {len(self.failed)} failed" if self.failed else ""
        return (
            f"fused {self.written} image(s), skipped {self.skipped} already done{failed}, in {self.seconds:.2f} s "
            f"({rate:.2f} images/s) -> {out}"
        )


@dataclass
class FuseJob:
    """One model's pairs planned into one output (``plan_fuse``): nothing is written before ``start``.

    ``targets`` maps every pair to fuse to its output path; ``manifest`` is None for a single output file;
    ``stale`` lists images of other settings that ``start`` removes (``--overwrite``).
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
        """Fuse every planned pair: read, fuse, write atomically, one pair after the other.

        A pair that cannot be read or fused raises, or with ``keep_going`` is listed in ``failed``; an output
        that cannot be written always raises.
        """
        failed = list(self.failed)
        written = 0
        start = time.perf_counter()
        for pair in tqdm(self.pairs, desc="fuse", unit="img", disable=None if progress else True, dynamic_ncols=True):
            try:
                fused = fuse_pair(self.model, *read_pair(pair, self.options), self.options, self.device)
            except TaskfuseError as e:
                if not self.keep_going:
                    raise
                failed.append((pair.name, str(e)))
                continue
            target = self.targets[pair.name]
            try:
                write_image(target, fused)
            except OSError as e:
                raise TaskfuseError(f"{target}: cannot write the fused image ({e.strerror or e})") from e
            written += 1
        return FuseSummary(written, self.skipped, time.perf_counter() - start, failed)


def plan_fuse(
    model: FusionModel,
    pairs: Iterable[Pair],
    out: str | os.PathLike,
    options: FuseOptions = FuseOptions(),
    overwrite: bool = False,
    keep_going: bool = False,
    device: torch.device | None = None,
) -> FuseJob:
    """Check everything about fusing ``pairs`` into ``out`` without writing: the output against the inputs,
    the pair sizes (headers), the run manifest against these settings, and what is already done.

    ``out`` is a folder receiving ``<name><ext>`` per pair, or with an image suffix one output file for a
    single pair (its suffix is then the format). In a folder, finished outputs are skipped when its manifest
    holds the same settings; other settings, or outputs without a manifest, raise unless ``overwrite``, which
    redoes every output and removes those of other settings. ``keep_going`` lists unreadable or mismatched
    pairs in ``failed`` instead of raising. ``device`` is where the job fuses (default: the model's).
    """
    pairs, out = list(pairs), Path(out)
    check_tile(options.tile, options.overlap)
    if options.resize not in (None, "vi", "ir"):
        raise TaskfuseError(f"resize must be 'vi' or 'ir', got {options.resize!r}")
    single = is_output_file(out)
    if single:
        if len(pairs) != 1:
            raise TaskfuseError(f"--out {out} names one image but there are {len(pairs)} pairs; give an output folder")
        options = replace(options, ext=out.suffix.lower())
        check_output(out, [pairs[0].ir, pairs[0].vi], inside=True)
        targets = {pairs[0].name: out}
    else:
        if out.exists() and not out.is_dir():
            raise TaskfuseError(f"--out {out} is a file; give a folder for the fused images")
        check_output(out, {p.parent for pair in pairs for p in (pair.ir, pair.vi)}, inside=True)
        targets = {p.name: out / f"{p.name}{options.ext}" for p in pairs}
    done = {name for name, path in targets.items() if path.exists()}
    manifest, stale = None, []
    if single:
        if done and not overwrite:
            raise TaskfuseError(f"--out {out} exists; pass --overwrite to replace it, or name another file")
    else:
        manifest, stale = _manifest(model, out, options, targets, done, overwrite, device)
    todo = pairs if overwrite else [p for p in pairs if p.name not in done]
    skipped = len(pairs) - len(todo)
    todo, failed = _check_sizes(todo, options.resize, keep_going)
    return FuseJob(model, out, options, todo, targets, skipped, failed, manifest, stale, keep_going, device)


def _manifest(
    model: FusionModel,
    out: Path,
    options: FuseOptions,
    targets: dict[str, Path],
    done: set[str],
    overwrite: bool,
    device: torch.device | None,
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
    differ = changed(stored.settings, settings) if stored and made else []
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
        "device": str(device or model_device(model)),
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
) -> FuseSummary:
    """Fuse every pair into ``out/<name><ext>`` (or the one file ``out``): ``plan_fuse``, then ``FuseJob.start``
    and ``FuseJob.run``.

    Sizes are checked from the file headers and the output against the inputs and its run manifest before
    anything is written, so bad input fails fast. Each output is written atomically: an interrupted or failed
    run leaves only complete files, and a rerun with the same settings resumes. ``device`` runs parameter-free
    rules on a GPU too (default: where the model's weights are). The other options are ``FuseOptions``'.
    """
    options = FuseOptions(ext, resize, ir_range, ir_colour, gray, tile, overlap)
    job = plan_fuse(model, pairs, out, options, overwrite, keep_going, device)
    job.start()
    return job.run(progress)

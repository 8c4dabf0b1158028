"""Fusing images on disk: load a method, pair the files, fuse, write atomically, skip finished outputs."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from taskfuse import models
from taskfuse.data.io import read_ir, read_vi, write_image
from taskfuse.data.pairs import Pair, check_sizes
from taskfuse.errors import TaskfuseError
from taskfuse.models.base import FusionModel

DEFAULT_METHOD = "laplacian"
"""The built-in default until a learned default model ships: Laplacian-pyramid fusion, which keeps IR intensity
through its averaged base layer (GFF picks the noisier, more textured source and loses night-time IR targets)."""


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` picks CUDA when available; asking for CUDA on a machine without it is an error."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise TaskfuseError("--device cuda was asked for but no CUDA GPU is available; use --device cpu or auto")
    return dev


def load(
    method: str | None = None, weights: str | os.PathLike | None = None, device: str = "cpu", **cfg: Any
) -> FusionModel:
    """A fusion model ready for inference (eval mode, on ``device``).

    With ``weights`` the method and its config come from the checkpoint (``method``, if given, must agree);
    without, ``method`` (default: ``DEFAULT_METHOD``) is built with ``cfg``.
    """
    from taskfuse.train.checkpoint import load_model, read_meta

    dev = resolve_device(device)
    if weights is not None:
        stored = read_meta(weights).get("method")
        if method is not None and stored and method.lower() != stored.lower():
            raise TaskfuseError(f"{weights} holds weights of {stored!r}, not {method!r}; drop --method or fix it")
        return load_model(weights, dev, **cfg)
    model = models.create(method or DEFAULT_METHOD, **cfg)
    if any(True for _ in model.parameters()) and method not in (None, DEFAULT_METHOD):
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


@torch.inference_mode()
def fuse_tensors(model: FusionModel, ir: Tensor, vi: Tensor, device: torch.device | None = None) -> Tensor:
    """Fuse one pair of (1, H, W) IR and (1|3, H, W) VIS tensors on ``device`` (default: the model's).

    Returns the display image (1|3, H, W) on the CPU.
    """
    dev = device or model_device(model)
    return model.fuse_color(ir[None].to(dev), vi[None].to(dev))[0].cpu()


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
) -> FuseSummary:
    """Fuse every pair into ``out/<name><ext>``; existing outputs are skipped unless ``overwrite``.

    Sizes are checked from the file headers before anything is written, so a mismatch fails fast. Each output
    is written atomically: an interrupted or failed run leaves only complete files, and a rerun resumes.
    ``device`` runs parameter-free rules on a GPU too (default: where the model's weights are).
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
        write_image(target, fuse_tensors(model, ir, vi, device))
        written += 1
    return FuseSummary(written, skipped, time.perf_counter() - start)

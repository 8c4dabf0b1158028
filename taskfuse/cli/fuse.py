"""``taskfuse fuse``: fuse infrared/visible files or folders with a classical rule or trained weights."""

from __future__ import annotations

import argparse
from pathlib import Path

from taskfuse import models
from taskfuse.data.io import IR_RANGES
from taskfuse.data.pairs import find_pairs
from taskfuse.device import resolve_device
from taskfuse.inference import Tile, fuse_pairs, load


def tile_arg(text: str) -> Tile:
    """``--tile``: a core tile size in pixels, ``auto`` or ``off``."""
    if text == "off":
        return None
    if text == "auto":
        return "auto"
    if text.isdigit() and int(text) > 0:
        return int(text)
    raise argparse.ArgumentTypeError(f"expected a tile size in pixels, auto or off, got {text!r}")


def weights_source(method: str) -> str:
    """Where the weights of ``method`` come from, for ``--list``."""
    spec = models.get(method)
    if not spec.learned:
        return "classical rule, no weights"
    sources = []
    if spec.weights is not None:
        sources.append(f"weights shipped in the package{' (the default)' * (method == models.DEFAULT_METHOD)}")
    if spec.converters:
        names = " | ".join(c.name for c in spec.converters)
        sources.append(f"the authors' released weights via taskfuse convert {names}")
    sources.append(f"train your own (taskfuse train {spec.config or method})")
    return "; ".join(sources)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "fuse",
        help="fuse IR/VIS images (files or folders paired by name)",
        description="Fuse registered infrared and visible images. Folders pair images by file stem; outputs are "
        "written atomically as OUT/<stem>.<ext> and a rerun skips those already there.",
    )
    p.add_argument("--ir", type=Path, help="infrared image or folder")
    p.add_argument("--vi", type=Path, help="visible image or folder (colour or gray)")
    p.add_argument("--out", type=Path, help="output folder")
    p.add_argument("--method", help=f"fusion method (default: {models.DEFAULT_METHOD}; see --list)")
    p.add_argument("--weights", type=Path, help="trained weights (.safetensors) of a learned method")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    p.add_argument("--resize", choices=("vi", "ir"), help="resize this side to the other when sizes differ")
    p.add_argument("--ir-range", choices=IR_RANGES, default="auto", help="how 16-bit thermal maps to [0,1]")
    p.add_argument("--ext", choices=("png", "jpg", "bmp", "tif"), default="png", help="output format")
    p.add_argument(
        "--tile",
        type=tile_arg,
        default="auto",
        metavar="N|auto|off",
        help="fuse large images in N-pixel tiles; auto tiles above 2048x2048 pixels off CUDA, or when CUDA runs "
        "out of memory (default: auto)",
    )
    p.add_argument(
        "--tile-overlap",
        type=int,
        default=32,
        metavar="PX",
        help="context fused around each tile; must cover the network's receptive field (default: 32; classical "
        "multi-scale rules raise it to their own)",
    )
    p.add_argument("--overwrite", action="store_true", help="redo outputs that already exist")
    p.add_argument("--skip-unpaired", action="store_true", help="ignore images that have no partner")
    p.add_argument("--list", action="store_true", help="list the available methods and exit")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.list:
        for name in models.names():
            print(f"{name:<10} {weights_source(name)}")
        return 0
    missing = [f"--{k}" for k in ("ir", "vi", "out") if getattr(args, k) is None]
    if missing:
        print(f"taskfuse fuse: error: {', '.join(missing)} required (or --list)")
        return 2
    pairs = find_pairs(args.ir, args.vi, skip_unpaired=args.skip_unpaired)
    model = load(args.method, args.weights, args.device)
    summary = fuse_pairs(
        model,
        pairs,
        args.out,
        f".{args.ext}",
        args.overwrite,
        args.resize,
        args.ir_range,
        device=resolve_device(args.device),
        tile=args.tile,
        overlap=args.tile_overlap,
    )
    print(summary.line(args.out))
    return 0

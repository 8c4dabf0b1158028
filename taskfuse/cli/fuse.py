"""``taskfuse fuse``: fuse infrared/visible files or folders with classical rules or trained weights."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from taskfuse import models
from taskfuse.data.io import IR_COLOURS, IR_RANGES, PNG_LEVEL, QUALITY
from taskfuse.data.manifest import MANIFEST
from taskfuse.data.pairs import apply_pattern, check_output, find_pairs, name_pattern
from taskfuse.data.video import EXTRA, is_video, is_video_output, pyav
from taskfuse.device import DEVICES, resolve_device
from taskfuse.errors import TaskfuseError
from taskfuse.inference import FuseJob, FuseOptions, Tile, is_output_file, load, plan_fuse, plan_video
from taskfuse.train.resolve import apply_override

FORMATS = ("png", "jpg", "bmp", "tif", "webp")


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
        description="Fuse registered infrared and visible images. Folders pair images by name; outputs are "
        f"written atomically as OUT/<name>.<ext> with a run manifest (OUT/{MANIFEST}): a rerun with the same "
        "settings skips finished images, one with other settings refuses to mix its images in. Every check "
        "runs before the first image is fused. Exit status: 0 done, 1 some pairs failed under --keep-going, "
        "2 bad input (nothing fused, or stopped at the bad pair), 130/143 interrupted. See docs/fusing.md.",
    )
    p.add_argument("--ir", type=Path, help="infrared image, folder or video")
    p.add_argument("--vi", type=Path, help="visible image, folder (colour or gray) or video")
    p.add_argument(
        "--out",
        type=Path,
        help="output folder; for a single pair, a file name with an image suffix (fused.png) writes that file; "
        "for two videos, a video file (fused.mp4) or a folder of frames",
    )
    p.add_argument(
        "--method",
        nargs="+",
        metavar="NAME",
        help=f"fusion method (default: {models.DEFAULT_METHOD}; see --list); several names fuse with each into "
        "OUT/<name>/",
    )
    p.add_argument("--weights", type=Path, help="trained weights (.safetensors) of a learned method")
    p.add_argument(
        "--set",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="model config keys that leave the weights alone, e.g. display=none (the default model "
        "without its contrast stretch; values parsed as YAML)",
    )
    p.add_argument("--device", default="auto", help=f"{DEVICES} (default: auto)")
    p.add_argument("--resize", choices=("vi", "ir"), help="resize this side to the other when sizes differ")
    p.add_argument(
        "--ir-range",
        choices=IR_RANGES,
        default="auto",
        help="how 16-bit/float thermal maps to [0,1]: auto = min..max without a handful of outliers, full = "
        "divide by 65535, p1-p99 = clip 1%% each side (default: auto; 8-bit is always /255)",
    )
    p.add_argument(
        "--ir-colour",
        choices=IR_COLOURS,
        default="error",
        help="false-colour (palette) infrared images: refuse them (error, default) or fuse their BT.601 luma",
    )
    p.add_argument("--ext", choices=FORMATS, help="output format (default: png, or the suffix of an --out file)")
    p.add_argument(
        "--png-level",
        type=int,
        choices=range(10),
        default=PNG_LEVEL,
        metavar="0-9",
        help=f"PNG compression: 1 Huffman coding alone (fast, small on camera images), 2-9 zlib search of that effort, "
        f"0 none; the pixels are the same at every level (default: {PNG_LEVEL}; on a GPU level 1 is deflated there)",
    )
    p.add_argument(
        "--quality",
        type=int,
        default=QUALITY,
        metavar="1-100",
        help=f"quality of jpg and webp outputs (default: {QUALITY})",
    )
    p.add_argument("--gray", action="store_true", help="write the fused luminance Y (one channel) instead of colour")
    p.add_argument(
        "--batch",
        type=int,
        metavar="N",
        help="pairs of one size fused per forward pass (default: 16 on CUDA, 1 on the CPU)",
    )
    p.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="threads decoding and threads encoding images, each (default: one per CPU, at most 8; "
        "at most 2 encoding where the GPU deflates PNG files, and then up to 12 decoding worker processes)",
    )
    p.add_argument(
        "--worker-processes",
        action=argparse.BooleanOptionalAction,
        help="decode, encode and write images in --workers forked processes of each kind instead of threads, "
        "each with its own interpreter lock (not on Windows; not for videos; default: on a GPU from 1000 pairs)",
    )
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
    p.add_argument(
        "--ir-pattern",
        default="*",
        metavar="PAT",
        help="infrared file names, * standing for the name shared with the visible file (e.g. IR_*; default *)",
    )
    p.add_argument("--vi-pattern", default="*", metavar="PAT", help="visible file names (e.g. VIS_*; default *)")
    p.add_argument(
        "--out-pattern", default="*", metavar="PAT", help="output file names (e.g. Fuse* gives Fuse12.png; default *)"
    )
    p.add_argument(
        "--recursive", action="store_true", help="pair images in sub-folders too; the output tree mirrors the input"
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="redo outputs that exist; with other settings than the folder's manifest, replace all its results",
    )
    p.add_argument("--skip-unpaired", action="store_true", help="ignore images that have no partner")
    p.add_argument(
        "--keep-going",
        action="store_true",
        help="continue past unreadable or mismatched pairs, list them at the end and exit with status 1",
    )
    p.add_argument(
        "--codec",
        metavar="NAME",
        help="FFmpeg encoder of a video --out (default: libx264 for .mp4/.mov, lossless ffv1 for .mkv/.avi, "
        "libvpx-vp9 for .webm); needs PyAV",
    )
    p.add_argument("--list", action="store_true", help="list the available methods and exit")
    p.set_defaults(run=run)


def output_format(ext: str | None, out: Path, single: bool) -> str:
    """The output suffix: ``--ext``, or the suffix of an output file, which must agree with ``--ext``."""
    if not single:
        return f".{ext or 'png'}"
    suffix = out.suffix.lower()
    if ext is not None and suffix.lstrip(".") not in {ext, {"jpg": "jpeg", "tif": "tiff"}.get(ext)}:
        raise TaskfuseError(f"--out {out} and --ext {ext} disagree on the format; drop --ext or rename the file")
    return suffix


def model_config(texts: list[str]) -> dict[str, Any]:
    """``--set KEY=VALUE ...`` as keyword arguments of ``taskfuse.load``."""
    config: dict[str, Any] = {}
    for text in texts:
        apply_override(config, text)
    return config


def plan(args: argparse.Namespace) -> list[FuseJob]:
    """Every check of the command, in order, before anything is written: arguments, device, output against
    inputs, pairing, models and weights, sizes and run manifests. One job per method."""
    missing = [f"--{k}" for k in ("ir", "vi", "out") if getattr(args, k) is None]
    if missing:
        raise TaskfuseError(f"{', '.join(missing)} required (or --list); see taskfuse fuse --help")
    device = resolve_device(args.device)
    methods = [m.lower() for m in args.method] if args.method else [None]
    if len(set(methods)) != len(methods):
        raise TaskfuseError(f"--method {' '.join(args.method)} names a method twice; name each once")
    if len(methods) > 1 and args.weights is not None:
        raise TaskfuseError("--weights belongs to one method; fuse several weights files in separate commands")
    single = is_output_file(args.out)
    if single and len(methods) > 1:
        raise TaskfuseError(f"--out {args.out} names one image, but several methods need an output folder")
    options = FuseOptions(
        output_format(args.ext, args.out, single),
        args.resize,
        args.ir_range,
        args.ir_colour,
        args.gray,
        args.tile,
        args.tile_overlap,
        args.png_level,
        args.quality,
    )
    options.check()
    name_pattern(args.out_pattern, "--out-pattern")
    check_output(args.out, [args.ir, args.vi])
    if is_video(args.ir) or is_video(args.vi):
        return plan_videos(args, methods, options, device)
    if args.codec is not None:
        raise TaskfuseError("--codec is for a video --out; give two videos as --ir and --vi")
    pairs = find_pairs(args.ir, args.vi, args.skip_unpaired, args.ir_pattern, args.vi_pattern, args.recursive)
    if args.out_pattern != "*":
        pairs = [replace(p, name=apply_pattern(p.name, args.out_pattern)) for p in pairs]
    jobs, config = [], model_config(args.set)
    pipeline = {"batch": args.batch, "workers": args.workers, "processes": args.worker_processes}
    for method in methods:
        model = load(method, args.weights, str(device), **config)
        out = args.out / method if len(methods) > 1 else args.out
        jobs.append(plan_fuse(model, pairs, out, options, args.overwrite, args.keep_going, device, **pipeline))
    return jobs


def plan_videos(
    args: argparse.Namespace, methods: list[str | None], options: FuseOptions, device: torch.device
) -> list[FuseJob]:
    """The jobs of two videos: a fused video (one method) or a folder of fused frames per method."""
    for option, path in (("--ir", args.ir), ("--vi", args.vi)):
        if not is_video(path):
            raise TaskfuseError(f"{option} {path} is not a video file; give two videos, or two images or folders")
    video_out = is_video_output(args.out)
    if video_out and len(methods) > 1:
        raise TaskfuseError(f"--out {args.out} names one video, but several methods need an output folder")
    if args.codec is not None and not video_out:
        raise TaskfuseError(f"--codec needs a video --out (such as fused.mp4), not the frame folder {args.out}")
    if args.worker_processes:
        raise TaskfuseError("--worker-processes is for image pairs: video frames are decoded in order, in one thread")
    if pyav() is None:
        print(
            f"taskfuse fuse: note: PyAV is not installed ({EXTRA}); OpenCV reads and writes the videos, taking "
            "them for constant-rate and writing MPEG-4 Part 2 or FFV1 only",
            file=sys.stderr,
        )
    if is_output_file(args.out):
        raise TaskfuseError(f"--out {args.out} names an image; give a video file (fused.mp4) or a frame folder")
    jobs, config = [], model_config(args.set)
    for method in methods:
        model = load(method, args.weights, str(device), **config)
        out = args.out / method if len(methods) > 1 else args.out
        job = plan_video(
            model, args.ir, args.vi, out, options, args.overwrite, device, args.batch, args.workers, args.codec
        )
        jobs.append(job)
    assert jobs[0].video is not None
    for path in jobs[0].video.audio:
        print(f"taskfuse fuse: note: {path} has an audio stream; the fused output has none", file=sys.stderr)
    return jobs


def run(args: argparse.Namespace) -> int:
    if args.list:
        for name in models.names():
            print(f"{name:<10} {weights_source(name)}")
        return 0
    jobs = plan(args)
    for job in jobs:
        job.start()
    failed = 0
    for job in jobs:
        summary = job.run()
        print(summary.line(job.out))
        for name, why in summary.failed:
            print(f"taskfuse fuse: failed {name}: {why}", file=sys.stderr)
        failed += len(summary.failed)
    if failed:
        print(f"taskfuse fuse: {failed} pair(s) failed and were left out (listed above)", file=sys.stderr)
        return 1
    return 0

"""``taskfuse evaluate``: score results; one sub-command per kind of result (``fusion`` so far).

Each sub-command is added by an ``_add_<task>`` function listed in ``TASKS`` and sets its own ``run``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from tqdm import tqdm

from taskfuse.data.io import read_ir, read_vi
from taskfuse.data.pairs import Pair, find_pairs, list_images, listing
from taskfuse.errors import TaskfuseError
from taskfuse.inference import resolve_device
from taskfuse.metrics.functional import SF_SCALES
from taskfuse.metrics.fusion import DEFAULT_METRICS, HIGHER_IS_BETTER, METRICS, FusionMetrics, metric_name
from taskfuse.metrics.report import write_report


def _method_dir(text: str) -> tuple[str, Path]:
    """``NAME=DIR``, or a bare ``DIR`` named after its last component."""
    name, sep, folder = text.partition("=")
    if not sep:
        name, folder = Path(text).name, text
    if not name or not folder:
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=DIR (e.g. seafusion=results/seafusion)")
    return name, Path(folder)


def _add_fusion(tasks: argparse._SubParsersAction) -> None:
    p = tasks.add_parser(
        "fusion",
        help="fusion-quality metrics of fused images against their IR/VIS sources",
        description="Score the fused images of one or more methods against their infrared and visible "
        "sources. Images pair by file stem across the folders (extensions may differ). Writes per_image.csv, "
        "summary.md, summary.json and one cdf_<metric>.png per metric to --out.",
    )
    p.add_argument("--ir", type=Path, required=True, help="folder of infrared source images")
    p.add_argument("--vi", type=Path, required=True, help="folder of visible source images")
    p.add_argument(
        "--fused",
        type=_method_dir,
        nargs="+",
        required=True,
        metavar="NAME=DIR",
        help="one folder of fused images per method; a bare DIR is named after the folder",
    )
    p.add_argument(
        "--metrics",
        nargs="+",
        default=list(DEFAULT_METRICS),
        metavar="METRIC",
        help=f"metrics to compute (default: {' '.join(DEFAULT_METRICS)}; known: {' '.join(METRICS)})",
    )
    p.add_argument(
        "--sf-scale",
        choices=SF_SCALES,
        default="reference",
        help="SF on [0,1] images as the reference script (default) or on 0..255 levels as published tables",
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    p.add_argument("--out", type=Path, required=True, help="folder for the report files")
    p.set_defaults(run=run_fusion)


TASKS = (_add_fusion,)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="score fused images (metrics, tables, plots)",
        description="Evaluate results; choose what to evaluate with a sub-command.",
    )
    tasks = p.add_subparsers(dest="task", required=True, metavar="TASK")
    for add in TASKS:
        add(tasks)


def _fused_files(name: str, folder: Path, pairs: list[Pair]) -> dict[str, Path]:
    files = list_images(folder)
    missing = [p for p in pairs if p.name not in files]
    if missing:
        shown = listing([f"{p.name} (from {p.ir.name} + {p.vi.name})" for p in missing])
        raise TaskfuseError(
            f"--fused {name}={folder}: no fused image for {len(missing)} of {len(pairs)} pairs: "
            f"{shown}. Fuse those pairs into {folder} (same file stem, any image suffix), "
            "or leave them out of --ir/--vi"
        )
    return {p.name: files[p.name] for p in pairs}


def run_fusion(args: argparse.Namespace) -> int:
    metrics = list(dict.fromkeys(metric_name(m) for m in args.metrics))
    methods = dict(args.fused)
    if len(methods) != len(args.fused):
        raise TaskfuseError("two --fused entries share a method name; give each NAME=DIR a distinct NAME")
    pairs = find_pairs(args.ir, args.vi)
    fused = {name: _fused_files(name, folder, pairs) for name, folder in methods.items()}
    device = resolve_device(args.device)
    meters = {name: FusionMetrics(metrics, sf_scale=args.sf_scale) for name in methods}
    with torch.inference_mode():
        for pair in tqdm(pairs, desc="evaluate fusion", unit="pair", disable=None):
            ir, vi = read_ir(pair.ir).to(device), read_vi(pair.vi).to(device)
            if ir.shape[-2:] != vi.shape[-2:]:
                raise TaskfuseError(
                    f"{pair.ir} and {pair.vi} differ in size; the metrics need registered pairs of one size"
                )
            for name, files in fused.items():
                img = read_vi(files[pair.name]).to(device)
                if img.shape[-2:] != ir.shape[-2:]:
                    raise TaskfuseError(
                        f"{files[pair.name]} is {img.shape[-1]}x{img.shape[-2]} but its sources are "
                        f"{ir.shape[-1]}x{ir.shape[-2]}; fused images must keep the source size"
                    )
                meters[name].update(img[None], ir[None], vi[None])
    values = {name: meter.compute() for name, meter in meters.items()}
    files = write_report(values, [p.name for p in pairs], args.out, HIGHER_IS_BETTER)
    print(files.summary_md.read_text(), end="")
    plots = len(files.cdf_plots)
    print(f"\nwrote per_image.csv, summary.md, summary.json and {plots} cdf_<metric>.png to {args.out}")
    return 0

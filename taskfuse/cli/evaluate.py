"""``taskfuse evaluate``: score results; one sub-command per kind of result.

``fusion`` scores fused images against their sources; one sub-command per downstream task of
``taskfuse.evaluation.DOWNSTREAM`` (segmentation, detection, keypoints) runs the protocol: the same task network
trained from the same seed on each input, scored on the test split, tabulated. Each task declares its own
options (``DownstreamTask.add_arguments``) and builds itself from them (``from_args``).
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from taskfuse.data import datasets
from taskfuse.data.io import read_ir, read_vi
from taskfuse.data.pairs import Pair, find_pairs, list_images, listing
from taskfuse.device import resolve_device
from taskfuse.errors import TaskfuseError
from taskfuse.evaluation import DOWNSTREAM, DownstreamTask
from taskfuse.evaluation.inputs import name_and_path, parse_inputs
from taskfuse.evaluation.loop import INPUT_NORMS, ProtocolConfig, evaluate
from taskfuse.evaluation.report import grid_indices, write_outputs
from taskfuse.evaluation.segmentation import sample_names
from taskfuse.metrics.functional import SF_SCALES
from taskfuse.metrics.fusion import DEFAULT_METRICS, HIGHER_IS_BETTER, METRICS, FusionMetrics, metric_name
from taskfuse.metrics.html import PAIRS, write_fusion_page
from taskfuse.metrics.report import write_report


def _add_fusion(tasks: argparse._SubParsersAction) -> None:
    p = tasks.add_parser(
        "fusion",
        help="fusion-quality metrics of fused images against their IR/VIS sources",
        description="Score the fused images of one or more methods against their infrared and visible "
        "sources. Images pair by file stem across the folders (extensions may differ). Writes per_image.csv, "
        "summary.md, summary.json and one cdf_<metric>.png per metric to --out, and with --html report.html.",
    )
    p.add_argument("--ir", type=Path, required=True, help="folder of infrared source images")
    p.add_argument("--vi", type=Path, required=True, help="folder of visible source images")
    p.add_argument(
        "--fused",
        type=name_and_path,
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
    p.add_argument("--html", action="store_true", help="also write report.html: tables, plots, best/worst pairs")
    p.add_argument(
        "--html-metric",
        metavar="METRIC",
        help="rank the pairs shown in report.html by this metric (default: the first of --metrics)",
    )
    p.add_argument(
        "--html-pairs", type=int, default=PAIRS, metavar="N", help=f"best and worst pairs shown (default: {PAIRS})"
    )
    p.set_defaults(run=run_fusion)


SPLIT_FILES = {"m3fd": "meta/{}.txt", "coco_keypoints": "annotations/{}.json"}
"""Layouts whose splits are listed in files. Their default test split is ``test`` when its file exists, else
``val`` (TarDAL's M3FD lists are ``meta/train.txt`` and ``meta/val.txt``); every other layout tests on ``test``."""


def _add_protocol(p: argparse.ArgumentParser) -> None:
    """Options shared by the downstream sub-commands."""
    defaults = ProtocolConfig()
    p.add_argument("--dataset", required=True, help=f"dataset layout ({', '.join(datasets.names())})")
    p.add_argument("--root", type=Path, required=True, help="dataset folder")
    p.add_argument("--train-split", default="train", help="split to train on (default: train)")
    p.add_argument(
        "--test-split",
        help="split to score on (default: test; for " + ", ".join(SPLIT_FILES) + " val when no test list exists)",
    )
    p.add_argument(
        "--inputs",
        nargs="+",
        action="extend",
        required=True,
        metavar="INPUT",
        help="ir, vi, a classical rule (mean, max, laplacian, gff) or NAME=DIR of fused images (DIR/<split>/ "
        "when present); repeatable",
    )
    p.add_argument("--epochs", type=int, default=defaults.epochs, help=f"default: {defaults.epochs}")
    p.add_argument("--batch-size", type=int, default=defaults.batch_size, help=f"default: {defaults.batch_size}")
    p.add_argument("--lr", type=float, default=defaults.lr, help=f"peak learning rate (default: {defaults.lr})")
    p.add_argument("--weight-decay", type=float, default=defaults.weight_decay, help="default: %(default)s")
    p.add_argument("--optimizer", choices=("adamw", "sgd"), default=defaults.optimizer, help="default: adamw")
    p.add_argument("--crop", type=int, metavar="N", help="train on random N x N crops (default: full images)")
    p.add_argument("--no-flip", action="store_true", help="no random horizontal flips")
    p.add_argument("--seed", type=int, default=defaults.seed, help="seed of init, order and crops (default: 0)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    p.add_argument("--workers", type=int, default=defaults.workers, help="data-loading processes (default: 0)")
    p.add_argument("--amp", action="store_true", help="bfloat16 autocast on CUDA")
    p.add_argument("--grid", type=int, default=defaults.grid, help="test images in grid.png (default: 4)")
    p.add_argument(
        "--input-norm",
        choices=INPUT_NORMS,
        default=defaults.input_norm,
        help="minmax: stretch every fused image to the full 0-255 range before quantising, as the SeAFusion and "
        "PSFusion test scripts save theirs (IR and VIS as read); default: none",
    )
    p.add_argument("--out", type=Path, required=True, help="output folder (a rerun resumes it)")


def _add_downstream(tasks: argparse._SubParsersAction, name: str, task: type[DownstreamTask]) -> None:
    p = tasks.add_parser(name, help=task.summary, description=task.description)
    _add_protocol(p)
    task.add_arguments(p)
    p.set_defaults(run=partial(run_downstream, task))


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="score fused images (metrics, tables, plots)",
        description="Evaluate results; choose what to evaluate with a sub-command.",
    )
    tasks = p.add_subparsers(dest="task", required=True, metavar="TASK")
    _add_fusion(tasks)
    for name in DOWNSTREAM:
        _add_downstream(tasks, name, DOWNSTREAM.get(name))


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
    shown = metric_name(args.html_metric or metrics[0])
    if args.html and (shown not in metrics or args.html_pairs < 0):
        raise TaskfuseError(f"--html-metric {shown} must be one of --metrics and --html-pairs at least 0")
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
    if args.html:
        page = write_fusion_page(
            args.out / "report.html",
            files,
            [p.name for p in pairs],
            values,
            HIGHER_IS_BETTER,
            lambda i: (read_ir(pairs[i].ir), read_vi(pairs[i].vi)),
            lambda m, i: read_vi(fused[m][pairs[i].name]),
            shown,
            args.html_pairs,
        )
        print(f"wrote {page}")
    return 0


def _open_splits(args: argparse.Namespace) -> tuple[Any, Any]:
    test_split = args.test_split or "test"
    listed = SPLIT_FILES.get(args.dataset.lower())
    if args.test_split is None and listed and not (args.root / listed.format("test")).is_file():
        test_split = "val"
    train = datasets.open_dataset(args.dataset, args.root, args.train_split)
    test = datasets.open_dataset(args.dataset, args.root, test_split)
    if train.classes is None:
        raise TaskfuseError(f"--dataset {args.dataset}: the layout has no classes to learn; pick an annotated one")
    return train, test


def _protocol_config(args: argparse.Namespace) -> ProtocolConfig:
    return ProtocolConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        optimizer=args.optimizer,
        crop=args.crop,
        flip=not args.no_flip,
        seed=args.seed,
        device=args.device,
        workers=args.workers,
        amp=args.amp,
        grid=args.grid,
        input_norm=args.input_norm,
    )


def run_downstream(task_cls: type[DownstreamTask], args: argparse.Namespace) -> int:
    """Open the splits, build the task from the options, run the protocol for ``--inputs`` and print the table."""
    train, test = _open_splits(args)
    task = task_cls.from_args(args, train)
    specs = parse_inputs(args.inputs)
    results: dict[str, Any] = evaluate(task, train, test, specs, args.out, _protocol_config(args))
    rows = {spec.name: args.out / spec.name for spec in specs}
    extra = task.extra_rows(test, args.out, args.device, args.grid)
    if extra:
        results |= {name: result for name, (result, _) in extra.items()}
        rows |= {name: folder for name, (_, folder) in extra.items()}
        names = sample_names(test)
        shown = [names[i] for i in grid_indices(len(names), args.grid)]
        write_outputs(task, results, rows, args.out, shown, config=asdict(_protocol_config(args)))
    print((args.out / "table.md").read_text(), end="")
    grid = " and grid.png" if args.grid else ""
    print(f"\nwrote table.md, results.json{grid} to {args.out}; per row: {', '.join(str(r) for r in rows.values())}")
    return 0

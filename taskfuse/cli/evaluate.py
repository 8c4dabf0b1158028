"""``taskfuse evaluate``: score results; one sub-command per kind of result.

``fusion`` scores fused images against their sources; ``segmentation``, ``detection`` and ``keypoints`` run the
downstream protocol (``taskfuse.evaluation``): the same task network trained from the same seed on each input,
scored on the test split, tabulated. Each sub-command is added by an ``_add_<task>`` function listed in
``TASKS`` and sets its own ``run``.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from taskfuse.data import datasets
from taskfuse.data.io import read_ir, read_vi
from taskfuse.data.pairs import Pair, find_pairs, list_images, listing
from taskfuse.device import resolve_device
from taskfuse.errors import TaskfuseError
from taskfuse.evaluation.base import DownstreamTask
from taskfuse.evaluation.inputs import parse_inputs
from taskfuse.evaluation.loop import ProtocolConfig, evaluate
from taskfuse.evaluation.report import grid_indices, write_outputs
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
    p.add_argument("--out", type=Path, required=True, help="output folder (a rerun resumes it)")


def _add_segmentation(tasks: argparse._SubParsersAction) -> None:
    p = tasks.add_parser(
        "segmentation",
        help="train one segmenter per input (IR, VIS, fused) and compare per-class IoU / mIoU",
        description="The seeds' segmentation protocol: for each input train the same segmenter from the same "
        "seed on the train split (inputs normalised with their own training mean/std), score it on the test "
        "split, and write table.md (classes as columns, mIoU last, best bold, second _italic_), results.json, "
        "grid.png and one folder per input. A rerun skips finished inputs and resumes interrupted ones.",
    )
    _add_protocol(p)
    p.add_argument("--segmenter", default="segformer-b2", help="segmentation network (default: segformer-b2)")
    p.add_argument(
        "--pretrained", type=Path, metavar="FILE", help="local .safetensors weights loaded into every fresh segmenter"
    )
    p.add_argument(
        "--direct",
        type=_method_dir,
        nargs="+",
        action="extend",
        default=[],
        metavar="NAME=WEIGHTS",
        help="also score the segmentation head of these fusion weights (psfusion, mafs) as 'NAME (direct)' rows",
    )
    p.set_defaults(run=run_segmentation)


def _add_detection(tasks: argparse._SubParsersAction) -> None:
    p = tasks.add_parser(
        "detection",
        help="train one detector per input (IR, VIS, fused) and compare mAP@0.5 and mAP@0.5:0.95",
        description="The seeds' detection protocol: as 'evaluate segmentation', with a detector trained on the "
        "boxes of the dataset and scored by mAP@0.5 and mAP@0.5:0.95 per class.",
    )
    _add_protocol(p)
    p.add_argument("--detector", help="detection network (default: the task's)")
    p.set_defaults(run=run_detection)


def _add_keypoints(tasks: argparse._SubParsersAction) -> None:
    p = tasks.add_parser(
        "keypoints",
        help="train one keypoint network per input (IR, VIS, fused) and compare OKS AP",
        description="The seeds' keypoint protocol: as 'evaluate segmentation', with a heatmap keypoint network "
        "trained with a visibility-weighted loss and scored by OKS AP.",
    )
    _add_protocol(p)
    p.add_argument("--keypoint-net", help="keypoint network (default: the task's)")
    p.set_defaults(run=run_keypoints)


TASKS = (_add_fusion, _add_segmentation, _add_detection, _add_keypoints)


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
    )


def _run_protocol(
    args: argparse.Namespace, task: DownstreamTask, train: Any, test: Any
) -> tuple[dict[str, Any], dict[str, Path]]:
    """Run ``evaluate`` for ``--inputs``; the results and the output folder of each input."""
    specs = parse_inputs(args.inputs)
    results: dict[str, Any] = evaluate(task, train, test, specs, args.out, _protocol_config(args))
    return results, {spec.name: args.out / spec.name for spec in specs}


def _report(args: argparse.Namespace, rows: dict[str, Path]) -> int:
    print((args.out / "table.md").read_text(), end="")
    grid = " and grid.png" if args.grid else ""
    print(f"\nwrote table.md, results.json{grid} to {args.out}; per row: {', '.join(str(r) for r in rows.values())}")
    return 0


def run_segmentation(args: argparse.Namespace) -> int:
    from taskfuse.evaluation.segmentation import SegmentationTask, direct_segmentation, sample_names

    direct = dict(args.direct)
    if len(direct) != len(args.direct):
        raise TaskfuseError("two --direct entries share a name; give each NAME=WEIGHTS a distinct NAME")
    clash = sorted(set(direct) & {s.name for s in parse_inputs(args.inputs)})
    if clash:
        raise TaskfuseError(f"--direct {clash[0]} also names an input; rename one of them")
    missing = [str(w) for w in direct.values() if not w.is_file()]
    if missing:
        raise TaskfuseError(f"--direct: no such weights file: {', '.join(missing)}")
    train, test = _open_splits(args)
    pretrained = None if args.pretrained is None else str(args.pretrained)
    task = SegmentationTask(train.classes, model=args.segmenter, pretrained=pretrained)
    results, rows = _run_protocol(args, task, train, test)
    if direct:
        for name, weights in direct.items():
            folder = args.out / "direct" / name
            results[f"{name} (direct)"] = direct_segmentation(weights, test, task, folder, args.device, args.grid)
            rows[f"{name} (direct)"] = folder
        names = sample_names(test)
        shown = [names[i] for i in grid_indices(len(names), args.grid)]
        write_outputs(task, results, rows, args.out, shown, config=asdict(_protocol_config(args)))
    return _report(args, rows)


def run_detection(args: argparse.Namespace) -> int:
    from taskfuse.evaluation.detection import DetectionTask

    train, test = _open_splits(args)
    options = {} if args.detector is None else {"model": args.detector}
    return _report(args, _run_protocol(args, DetectionTask(train.classes, **options), train, test)[1])


def run_keypoints(args: argparse.Namespace) -> int:
    from taskfuse.evaluation.keypoints import KeypointTask

    train, test = _open_splits(args)
    names = getattr(train, "keypoint_names", None)
    if not names:
        raise TaskfuseError(
            f"--dataset {args.dataset}: the samples name no keypoints; use a keypoint layout (coco_keypoints)"
        )
    options = {} if args.keypoint_net is None else {"model": args.keypoint_net}
    task = KeypointTask(train.classes, keypoint_names=names, **options)
    return _report(args, _run_protocol(args, task, train, test)[1])

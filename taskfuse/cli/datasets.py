"""``taskfuse datasets``: list the dataset layouts taskfuse reads, and check a dataset folder against one."""

from __future__ import annotations

import argparse
from pathlib import Path

from taskfuse.data.check import check_dataset
from taskfuse.data.datasets import DATASETS, names
from taskfuse.data.io import IR_RANGES


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "datasets",
        help="list dataset layouts; check a dataset folder",
        description="Dataset layouts (MSRS, MFNet, FMB, PST900, M3FD, LLVIP, paired folders, COCO keypoints) "
        "as published; see docs/datasets.md.",
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    c = actions.add_parser(
        "check",
        help="report every problem of a dataset folder; exit 1 if any",
        description="Validate ROOT against a layout: missing partners, unreadable files (every image is decoded "
        "in full, so truncated or corrupt files and false-colour infrared images are found, as taskfuse fuse "
        "would reject them), IR/VIS and label size mismatches, label values out of range (255 = ignore is "
        "allowed), boxes outside the image or of unknown classes. Exit code 0 when clean, 1 when problems "
        "were found.",
    )
    c.add_argument("root", type=Path, help="dataset root folder")
    c.add_argument("--layout", required=True, help="layout name (see: taskfuse datasets list)")
    c.add_argument("--split", help="split to check (default: the layout's default split)")
    c.add_argument("--ir-range", choices=IR_RANGES, default="auto", help="how 16-bit thermal maps to [0,1]")
    c.add_argument("--quiet", action="store_true", help="no progress bar")
    c.set_defaults(run=run_check)
    ls = actions.add_parser("list", help="list the dataset layouts", description="List the dataset layouts.")
    ls.set_defaults(run=run_list)


def run_check(args: argparse.Namespace) -> int:
    report = check_dataset(args.root, args.layout, args.split, progress=not args.quiet, ir_range=args.ir_range)
    print(report.summary())
    return 0 if report.ok else 1


def run_list(args: argparse.Namespace) -> int:
    print(f"{'layout':<15} {'splits':<38} {'annotations':<17} {'classes':<8} folders")
    for name in names():
        cls = DATASETS.get(name)
        count = str(cls.classes.num_classes) if cls.classes else "-"
        doc = (cls.__doc__ or "").strip().splitlines()[0].replace("``", "")
        print(f"{name:<15} {', '.join(cls.splits):<38} {cls.annotations:<17} {count:<8} {doc}")
    return 0

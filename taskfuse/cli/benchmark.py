"""``taskfuse benchmark``: end-to-end benchmarks of the project (docs/benchmark.md).

taskfuse benchmark synthetic                                   # --scale small, on the CPU in a few minutes
taskfuse benchmark synthetic --scale full --device cuda --rows ir vi mean max laplacian gff
taskfuse benchmark synthetic --scale full --device cuda --rows seafusion --variants task-guided
taskfuse benchmark synthetic --scale full --list               # the rows, to split a run into pieces
taskfuse benchmark synthetic --out runs/benchmark-synthetic --report
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from taskfuse.benchmark.scales import SCALES
from taskfuse.benchmark.training import VARIANTS


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "benchmark",
        help="end-to-end benchmarks (synthetic: does task guidance help?)",
        description="End-to-end benchmarks of the fusion methods.",
    )
    benchmarks = p.add_subparsers(dest="benchmark", required=True, metavar="BENCHMARK")
    s = benchmarks.add_parser(
        "synthetic",
        help="fusion-only vs task-guided training of every method, judged by downstream accuracy",
        description="Render labelled synthetic scenes; train every learned method fusion-only and task-guided; "
        "fuse both splits with every trained network and classical rule; train the same downstream segmenter "
        "(and detector) on every input; tabulate downstream scores, fusion metrics and wall times with a "
        "verdict. Finished rows are kept in OUT/rows/ and a rerun skips them, so a run can go in pieces "
        "(--rows), several at once into one OUT.",
    )
    s.add_argument("--scale", choices=tuple(SCALES), default="small", help="preset size (default: small, CPU)")
    s.add_argument("--out", type=Path, default=Path("runs/benchmark-synthetic"), help="output folder")
    s.add_argument(
        "--rows",
        nargs="+",
        default=[],
        metavar="ROW",
        help="rows to run: ir, vi, a classical rule, METHOD-VARIANT, or a method name for both variants "
        "(default: all; see --list)",
    )
    s.add_argument(
        "--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS), help="variants of the learned methods"
    )
    s.add_argument(
        "--detection",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also train and score the downstream detector (default: on at full scale, off at small)",
    )
    s.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    s.add_argument("--seed", type=int, default=0, help="seed of the scenes and of every training (default: 0)")
    s.add_argument("--report", action="store_true", help="only rebuild the table from the finished rows")
    s.add_argument(
        "--html-metric",
        default="Qabf",
        metavar="METRIC",
        help="fusion metric ranking the test scenes shown in report.html (default: Qabf)",
    )
    s.add_argument("--html-pairs", type=int, default=3, metavar="N", help="best and worst scenes shown (default: 3)")
    s.add_argument("--list", action="store_true", help="list the rows of the scale and exit")
    s.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bars")
    s.set_defaults(run=run_synthetic)


def run_synthetic(args: argparse.Namespace) -> int:
    from taskfuse.benchmark.report import write_report
    from taskfuse.benchmark.scales import get_scale
    from taskfuse.benchmark.synthetic import all_rows, run, select_rows

    scale = get_scale(args.scale)
    if args.list:
        for row in all_rows(scale):
            print(f"{row.name:<24} {row.kind}")
        return 0
    if not args.report:
        rows = select_rows(all_rows(scale), args.rows, args.variants)
        run(scale, args.out, rows, args.seed, args.device, args.detection, args.progress)
    paths = write_report(args.out, args.html_metric, args.html_pairs)
    sys.stdout.write(paths[0].read_text())
    print(f"\ntable: {', '.join(str(p) for p in paths)}")
    return 0

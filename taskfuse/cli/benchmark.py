"""``taskfuse benchmark``: end-to-end benchmarks of the project (docs/benchmark.md).

taskfuse benchmark claim --root /data/msrs_det --scale full --device cuda --out runs/claim   # the whole design
taskfuse benchmark claim --out runs/claim --plan               # units ready to run now, one per line
taskfuse benchmark claim --out runs/claim --units cell:ir:-:d0 # one unit (scripts/claim_full.sh runs them)
taskfuse benchmark claim --out runs/claim --report             # rebuild the table from the cells present
taskfuse benchmark claim --synthetic 120 40 --out runs/claim-synthetic   # the design on synthetic scenes
taskfuse benchmark synthetic                                   # --scale small, on the CPU in a few minutes
taskfuse benchmark synthetic --scale full --device cuda --rows ir vi mean max laplacian gff
taskfuse benchmark synthetic --scale full --device cuda --rows seafusion --variants task-guided
taskfuse benchmark synthetic --scale full --list               # the rows, to split a run into pieces
taskfuse benchmark synthetic --out runs/benchmark-synthetic --report
taskfuse benchmark synthetic --combine runs/s0 runs/s1 runs/s2 --out runs/seeds   # mean ± sd over seeds
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
    s.add_argument(
        "--combine",
        nargs="+",
        type=Path,
        default=[],
        metavar="DIR",
        help="summarise output folders that differ only in --seed into OUT/seeds.md and seeds.json, and exit",
    )
    s.add_argument("--list", action="store_true", help="list the rows of the scale and exit")
    s.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bars")
    s.set_defaults(run=run_synthetic)

    c = benchmarks.add_parser(
        "claim",
        help="real MSRS pairs with boxes: task-guided vs fusion-only by paired continuation, seeds and intervals",
        description="The seeds' claim on real labels (msrs_det): fusion networks pre-trained to a plateau, then "
        "continued with and without a detector in the loop (and a reseeded control), every row judged by the same "
        "detector over several fusion and downstream seeds, with paired bootstrap intervals and the smallest "
        "detectable difference (docs/benchmark.md). Work goes in resumable units under file locks, so pieces "
        "can run side by side into one OUT; the table rebuilds from the cells present.",
    )
    c.add_argument("--out", type=Path, default=Path("runs/benchmark-claim"), help="output folder")
    where = c.add_mutually_exclusive_group()
    where.add_argument("--root", help="the msrs_det folder (ir/, vi/, labels/); stored in OUT/claim.json")
    where.add_argument(
        "--synthetic",
        nargs=2,
        type=int,
        metavar=("TRAIN", "VAL"),
        help="instead of --root: TRAIN and VAL synthetic scenes with known truth, written in the msrs_det layout "
        "into OUT/scenes (a check of the design, no evidence on real data)",
    )
    c.add_argument(
        "--synthetic-size",
        nargs=2,
        type=int,
        default=(128, 160),
        metavar=("H", "W"),
        help="height and width of the --synthetic scenes (default: 128 160)",
    )
    c.add_argument("--scale", help="preset: tiny, cpu (default for a new OUT) or full (one GPU)")
    c.add_argument("--detector", help="downstream detector (default: the preset's; from scratch without --pretrained)")
    c.add_argument("--fusion-seeds", nargs="+", type=int, help="fusion seeds (default: the preset's)")
    c.add_argument("--downstream-seeds", nargs="+", type=int, help="downstream seeds (default: the preset's)")
    c.add_argument("--methods", nargs="+", help="methods trained both ways (default: every one detection guides)")
    c.add_argument(
        "--init",
        nargs="+",
        metavar="METHOD=WEIGHTS",
        help="start a method's pre-trainings from these weights (e.g. lite=stage_a.safetensors; default: random)",
    )
    c.add_argument(
        "--pretrained",
        metavar="FILE|imagenet",
        help="backbone weights of every detector, in the loop and downstream (an -effnet-liteN detector)",
    )
    c.add_argument(
        "--task-weight",
        type=float,
        metavar="W",
        help="SeAFusion's λ in round r of the continuation is W x r (default 1: the paper's round index)",
    )
    c.add_argument(
        "--head-warmup",
        type=int,
        metavar="N",
        help="steps that train a method's task head alone (FGFusion's foreground head) before its task-guided "
        "continuation (default: the preset's; 0: none)",
    )
    c.add_argument(
        "--fast",
        action="store_true",
        default=None,
        help="fusion trainings in channels_last and compiled (GPU; recorded in the design)",
    )
    c.add_argument(
        "--weights",
        nargs="+",
        default=[],
        metavar="NAME=FILE",
        help="rows of released weights, e.g. seafusion-released=SeAFusion.safetensors",
    )
    c.add_argument(
        "--reuse",
        type=Path,
        metavar="OTHER_OUT",
        help="copy the finished cells of the IR, VIS and classical rows from another claim folder made with the "
        "same data, detector, downstream seeds and preset (they depend on no weights), and those of the default "
        "and released rows made with the same weights (SHA-256)",
    )
    c.add_argument("--rows", nargs="+", default=[], metavar="ROW", help="rows to run (a row or a method; default all)")
    c.add_argument("--units", nargs="+", default=[], metavar="UNIT", help="run only these units (see --plan)")
    c.add_argument("--plan", action="store_true", help="print the units whose inputs are done, one per line")
    c.add_argument(
        "--list", action="store_true", help="list the rows and every unit: done, todo, or skip (a scored row's images)"
    )
    c.add_argument("--report", action="store_true", help="only rebuild the table from the finished cells")
    c.add_argument(
        "--compare",
        nargs=2,
        action="append",
        default=[],
        metavar=("A", "B"),
        help="print B minus A (mAP50, mAP50:95, paired bootstrap 95%% interval) for finished rows, and exit",
    )
    c.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    c.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bars")
    c.set_defaults(run=run_claim)


def run_synthetic(args: argparse.Namespace) -> int:
    from taskfuse.benchmark.report import write_report, write_seed_summary
    from taskfuse.benchmark.scales import get_scale
    from taskfuse.benchmark.synthetic import all_rows, run, select_rows

    if args.combine:
        paths = write_seed_summary(args.combine, args.out)
        sys.stdout.write(paths[0].read_text())
        return 0
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


def run_claim(args: argparse.Namespace) -> int:
    from taskfuse.benchmark.claim import (
        Claim,
        parse_init,
        parse_released,
        pretrained_source,
        reuse_cells,
        settle_design,
    )
    from taskfuse.benchmark.claim_report import compare_rows, write_report

    if args.compare:
        for line in compare_rows(args.out, args.compare):
            print(line)
        return 0

    root = args.root
    if args.synthetic is not None:
        from taskfuse.data.synthetic.msrs_det import write_msrs_det_scenes

        root = str(write_msrs_det_scenes(args.out / "scenes", *args.synthetic, *args.synthetic_size))
    given = {
        "root": root,
        "scale": args.scale,
        "detector": args.detector,
        "fusion_seeds": args.fusion_seeds,
        "downstream_seeds": args.downstream_seeds,
        "methods": args.methods,
        "released": parse_released(args.weights),
        "init": parse_init(args.init),
        "pretrained": None if args.pretrained is None else pretrained_source(args.pretrained),
        "task_weight": args.task_weight,
        "fast": args.fast,
        "head_warmup": args.head_warmup,
    }
    design = settle_design(args.out, given)
    if args.reuse is not None:
        for row in reuse_cells(args.out, design, args.reuse):
            print(f"{row}: cells copied from {args.reuse}", file=sys.stderr)
    claim = Claim(args.out, design, args.device, args.progress)
    rows = claim.select(args.rows)
    if args.plan:
        for unit in claim.plan(rows):
            print(unit)
        return 0
    if args.list:
        for row in rows:
            print(f"{row.name:<28} {row.kind}")
        todo = claim.todo(rows)
        for unit in claim.units(rows):
            print(f"{'todo' if unit in todo else 'done' if claim.done(unit) else 'skip'}  {unit}")
        return 0
    if args.units:
        for unit in args.units:
            claim.run(unit)
        return 0
    if not args.report:
        claim.run_all(rows)
    paths = write_report(args.out)
    sys.stdout.write(paths[0].read_text())
    print(f"\ntable: {', '.join(str(p) for p in paths)}")
    return 0

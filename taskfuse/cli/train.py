"""``taskfuse train``: train a fusion method with its task in the loop, from one config, resumable.

taskfuse train psfusion_synthetic --set train.iters=500
taskfuse train psfusion_synthetic --quick                 # a few small steps: does this config train here?
taskfuse train lite_finetune --set data.train.root=/data/my_pairs   # ir/ + vi/: 4/5 train, 1/5 val by name hash
taskfuse train my.yaml --set data.train.root=/data/MSRS train.batch_size=8 --out runs/
taskfuse train --resume runs/psfusion-20250101-120000
torchrun --nproc_per_node 4 -m taskfuse.cli.main train psfusion_msrs --set data.train.root=/data/MSRS
taskfuse train --list
"""

from __future__ import annotations

import argparse
from pathlib import Path

from taskfuse.errors import TaskfuseError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a fusion method (with its task in the loop) from a config",
        description="Train a fusion method from a YAML config or a shipped config name (see --list). The run "
        "folder gets the resolved config, metrics.csv, resumable checkpoints and fusion.safetensors for "
        "taskfuse fuse --weights.",
    )
    p.add_argument("config", nargs="?", help="config file or shipped config name")
    p.add_argument(
        "--set",
        dest="overrides",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="override config keys, e.g. train.lr=1e-4 data.batch_size=8 (values parsed as YAML)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="check that the config trains, before a long run: a few steps of two 64x64 crops on 8 samples, "
        "validation on 2 (--set still has the last word)",
    )
    p.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue a run from its latest checkpoint")
    p.add_argument("--out", type=Path, default=Path("runs"), help="folder for new runs (default: runs)")
    p.add_argument("--name", help="run name prefix (default: the config name)")
    p.add_argument("--device", help="auto, cpu, cuda or cuda:N (default: the config's train.device)")
    p.add_argument("--list", action="store_true", help="list the shipped configs and exit")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from taskfuse.train.loop import train
    from taskfuse.train.resolve import load_config, shipped_configs

    if args.list:
        configs = shipped_configs()
        width = max((len(n) for n in configs), default=0)
        for name, (_, description) in configs.items():
            print(f"{name:<{width}}  {description}")
        return 0
    if args.resume is not None:
        if args.config:
            raise TaskfuseError("--resume continues a run with its own config.yaml; drop the CONFIG argument")
        if args.quick:
            raise TaskfuseError("--quick starts a new short run; drop it to --resume a run")
        source = args.resume / "config.yaml"
        if not source.is_file():
            raise TaskfuseError(f"{args.resume}: not a run folder (no config.yaml); give the folder train created")
        cfg = load_config(source, args.overrides)
        name = None
    elif args.config:
        cfg = load_config(args.config, args.overrides, quick=args.quick)
        name = (args.name or Path(args.config).stem) + ("-quick" if args.quick else "")
    else:
        raise TaskfuseError("give a CONFIG (file or shipped name; see taskfuse train --list) or --resume RUN_DIR")
    result = train(cfg, args.out, args.resume, args.device, name)
    scores = ", ".join(f"{k} {v:.4g}" for k, v in result.scores.items())
    print(
        f"trained {result.steps} steps; weights in {result.run_dir / 'fusion.safetensors'}"
        + (f"; last validation: {scores}" if scores else "")
    )
    return 0

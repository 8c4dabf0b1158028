"""Training speed of each method at its paper batch size and crop: steps/s and images/s per training phase.

    python scripts/train_speed.py --device cuda --steps 50 --out train_speed.json
    python scripts/train_speed.py --methods psfusion mafs --set train.compile=true
    torchrun --nproc_per_node 2 scripts/train_speed.py --methods psfusion     # DDP: images/s of all GPUs

Each method runs from its ``<method>_synthetic`` config (the paper's recipe on synthetic scenes) through the
real engine (``taskfuse.train.loop.Trainer``): same strategy, optimisers, autocast and data pipeline. Every
phase of the strategy is timed separately (SeAFusion: fusion with the segmenter in the loop, and the
segmenter; MAFS: pretext, teacher and multi-task), on its last block of steps so that SeAFusion's fusion phase
includes the semantic loss. The scenes are rendered once and cached (``--scenes`` of them), so the numbers
measure training, not scene rendering (at least one batch per process of them); ``--warmup`` steps per phase
fill the cache and warm up CUDA. With the
default ``--workers 0`` batches are assembled in the training process; more workers overlap that with the GPU
(each worker keeps its own cache, so give enough warm-up steps for every worker to have rendered the scenes).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from taskfuse.benchmark.training import benchmark_methods
from taskfuse.train import distributed
from taskfuse.train.loop import Trainer
from taskfuse.train.resolve import load_config
from taskfuse.train.strategies import STRATEGIES

METHODS = benchmark_methods()


def phase_blocks(trainer: Trainer) -> dict[str, range]:
    """The last contiguous block of steps of every phase."""
    blocks: dict[str, range] = {}
    start, current = 0, None
    for t in range(trainer.total + 1):
        phase = trainer.strategy.phase_at(t) if t < trainer.total else None
        if phase != current:
            if current is not None:
                blocks[current] = range(start, t)
            start, current = t, phase
    return blocks


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_method(method: str, args: argparse.Namespace, info: distributed.DistInfo) -> dict[str, dict]:
    overrides = [
        "data.val=null",
        "log.best=",
        "log.progress=false",
        f"data.workers={args.workers}",
        "data.cache=true",
        *args.set,
    ]
    cfg = load_config(f"{method}_synthetic", overrides)
    batch = max(settings.batch_size for _, settings in STRATEGIES.get(cfg.strategy).phases(cfg).values())
    scenes = max(args.scenes, batch * info.world)
    cfg = load_config(f"{method}_synthetic", [*overrides, f"data.train.length={scenes}"])
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(cfg, Path(tmp), info)
    results = {}
    for phase, block in phase_blocks(trainer).items():
        batch = trainer.streams[phase].phase.batch_size
        if info.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(info.device)
        for k in range(args.warmup):
            trainer.strategy.train_step(block[k % len(block)])
        sync(info.device)
        start = time.perf_counter()
        for k in range(args.warmup, args.warmup + args.steps):
            trainer.strategy.train_step(block[k % len(block)])
        sync(info.device)
        seconds = time.perf_counter() - start
        results[phase] = {
            "steps_per_s": args.steps / seconds,
            "images_per_s": args.steps * batch * info.world / seconds,
            "batch_size": batch,
            "crop": trainer.streams[phase].phase.crop,
            "seconds": seconds,
            "peak_memory_gib": torch.cuda.max_memory_allocated(info.device) / 2**30
            if info.device.type == "cuda"
            else None,
        }
        if info.main:
            print(
                f"{method:10s} {phase:13s} batch {batch:3d}  {results[phase]['steps_per_s']:8.2f} steps/s  "
                f"{results[phase]['images_per_s']:9.1f} images/s",
                flush=True,
            )
    for stream in trainer.streams.values():
        stream.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per phase")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps per phase before timing")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--scenes", type=int, default=64, help="synthetic scenes rendered (and cached)")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers per process")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides for every method")
    parser.add_argument("--out", type=Path, default=Path("train_speed.json"), help="JSON file of the results")
    args = parser.parse_args()

    info = distributed.setup(args.device)
    report: dict = {
        "device": torch.cuda.get_device_name(info.device) if info.device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "processes": info.world,
        "steps": args.steps,
        "methods": {},
    }
    try:
        for method in args.methods:
            try:
                report["methods"][method] = bench_method(method, args, info)
            except (RuntimeError, ValueError) as e:
                report["methods"][method] = {"error": str(e)}
                if info.main:
                    print(f"{method}: failed: {e}", flush=True)
            if info.device.type == "cuda":
                torch.cuda.empty_cache()
    finally:
        distributed.teardown(info)
    if info.main:
        args.out.write_text(json.dumps(report, indent=2))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

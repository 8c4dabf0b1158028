"""Latency of one 480 x 640 IR/RGB pair for several fusion models in one run, on the CPU or a GPU.

    taskfuse convert seafusion-official SeAFusion.pth --out seafusion_msrs.safetensors
    taskfuse convert tardal-official tardal.pt --out tardal.safetensors
    python scripts/compare_speed.py lite seafusion_msrs.safetensors tardal.safetensors --threads 2
    python scripts/compare_speed.py lite seafusion_msrs.safetensors tardal.safetensors --device cuda

A model is a method name (its shipped weights, or a classical rule) or a weights file. Two timings per model,
each the median (and minimum) of ``--repeats`` runs after ``--warmup``:

* ``pair``: ``taskfuse.inference.fuse_tensors`` as ``taskfuse fuse`` runs it, from CPU tensors to the CPU display
  image: transfers, the network and the colour step (for converted official weights, the authors' post-processing,
  which for TarDAL runs through OpenCV on the CPU).
* ``network``: the forward pass alone on the device under ``torch.inference_mode``, bracketed by
  ``torch.cuda.synchronize`` on CUDA.

Besides wall time the pair's CPU time (all threads of the process) is reported: on a CPU shared with other jobs
it is the steadier figure.

Results go to ``--out`` as JSON and are printed as a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from taskfuse.device import resolve_device
from taskfuse.inference import fuse_tensors, load
from taskfuse.metrics.table import markdown_table
from taskfuse.models.base import FusionModel
from taskfuse.models.weights import read_meta


def timed(fn: Callable[[], object], device: torch.device, repeats: int, warmup: int) -> dict[str, float]:
    """Median and minimum wall time of ``fn`` and its median CPU time (all threads of this process), in ms.

    On a CPU shared with other work the wall time grows with the load; the CPU time much less so."""
    for _ in range(warmup):
        fn()
    wall, cpu = [], []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return {
        "median_ms": statistics.median(wall) * 1e3,
        "min_ms": min(wall) * 1e3,
        "cpu_median_ms": statistics.median(cpu) * 1e3,
    }


def build(model: str, device: torch.device) -> tuple[FusionModel, dict[str, Any]]:
    """The model on ``device`` and what it is (method, weights file, config)."""
    if model.endswith(".safetensors"):
        meta = read_meta(model)
        return load(weights=model, device=str(device)), {"method": meta["method"], "config": meta["config"]}
    return load(model, device=str(device)), {"method": model, "config": {}}


def measure(name: str, device: torch.device, repeats: int, warmup: int) -> dict[str, Any]:
    model, about = build(name, device)
    ir, vi = torch.rand(1, 480, 640), torch.rand(3, 480, 640)
    ir_dev, vi_dev = ir[None].to(device), vi[None].to(device)

    @torch.inference_mode()
    def network() -> None:
        model(ir_dev, vi_dev)

    return {
        "model": name,
        **about,
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "pair": timed(lambda: fuse_tensors(model, ir, vi, device), device, repeats, warmup),
        "network": timed(network, device, repeats, warmup),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="method names (shipped weights) or .safetensors files")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    parser.add_argument("--threads", type=int, default=0, help="CPU intra-op threads (default: torch's)")
    parser.add_argument("--repeats", type=int, default=10, help="timed runs per model and timing (default 10)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs first (default 2)")
    parser.add_argument("--out", type=Path, default=Path("compare_speed.json"), help="JSON file of the results")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    rows = [measure(m, device, args.repeats, args.warmup) for m in args.models]
    report = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "size_hw": [480, 640],
        "repeats": args.repeats,
        "results": rows,
    }
    args.out.write_text(json.dumps(report, indent=2))
    where = report["device"] + (f", {report['threads']} threads" if device.type == "cpu" else "")
    print(f"480 x 640 pair on {where}, torch {torch.__version__}, median (min) of {args.repeats}\n")
    table = [
        [
            r["model"],
            r["method"],
            f"{r['params_m']:.3f}",
            f"{r['pair']['median_ms']:.1f} ({r['pair']['min_ms']:.1f})",
            f"{r['pair']['cpu_median_ms']:.1f}",
            f"{r['network']['median_ms']:.1f} ({r['network']['min_ms']:.1f})",
        ]
        for r in rows
    ]
    header = ["model", "method", "params (M)", "pair ms", "pair CPU ms", "network ms"]
    print(markdown_table(header, table))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

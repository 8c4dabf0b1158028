"""Inference speed of a fusion model: CPU latency, GPU throughput, and a large pair fused in tiles.

    python scripts/fuse_speed.py --weights runs/default/fusion.safetensors --out fuse_speed.json
    python scripts/fuse_speed.py --method seafusion --amp bf16 --channels-last --compile
    python scripts/fuse_speed.py --method laplacian --device cpu --parts latency

Three parts (``--parts``):

* ``large``: one 3000 x 4000 (H x W) IR/RGB pair through ``fuse_tensors(tile=N)``: seconds and peak memory
  (``torch.cuda.max_memory_allocated`` on CUDA, the process's peak resident set size on CPU; this part runs
  first so that the CPU peak is its own). On CUDA the pair is also fused untiled where it fits, and the largest
  absolute difference between the tiled and untiled outputs is reported.
* ``latency``: one 480 x 640 IR/RGB pair on the CPU at the default thread count, colour recombination
  included: median and minimum of ``--repeats`` runs after ``--warmup``.
* ``throughput`` (CUDA only): pairs/s for batches (B, 1, 480, 640) of random IR and VIS luminance through the
  network under ``torch.inference_mode``, with optional autocast (``--amp``), channels-last memory format and
  ``torch.compile``; every timing is bracketed by ``torch.cuda.synchronize``. The batch sweep stops at the first
  out-of-memory batch size.

A learned ``--method`` without ``--weights`` runs at random initialisation (``random_init`` in the JSON): fine for
timing, meaningless for image quality. Results go to ``--out`` as JSON and are printed as a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

from taskfuse import models
from taskfuse.device import resolve_device
from taskfuse.inference import fuse_tensors, load, tile_context
from taskfuse.metrics.table import markdown_table
from taskfuse.models.base import FusionModel
from taskfuse.models.weights import read_meta

PARTS = ("large", "latency", "throughput")
AMP = {"bf16": torch.bfloat16, "fp16": torch.float16, "off": None}
GIB = 2**30


def build(method: str | None, weights: Path | None) -> tuple[FusionModel, str, bool]:
    """The model on the CPU in eval mode, its method name, and whether it is a learned net at random init."""
    if weights is not None:
        return load(method, weights, "cpu"), read_meta(weights)["method"], False
    name = method or models.DEFAULT_METHOD
    model = models.create(name).eval()
    return model, name, any(True for _ in model.parameters())


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_rss_gib() -> float:
    """Peak resident set size of this process so far (``ru_maxrss`` is in KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / GIB if sys.platform == "darwin" else peak / 2**20


def large_pair(model: FusionModel, device: torch.device, size: tuple[int, int], tile: int, overlap: int) -> dict:
    """Part ``large``: the tiled pair, and on CUDA the untiled one with the difference between them."""
    h, w = size
    ir, vi = torch.rand(1, h, w), torch.rand(3, h, w)
    model.to(device)
    halo, align = tile_context(model, overlap)
    result: dict[str, Any] = {"size_hw": [h, w], "tile": tile, "halo": halo, "align": align}
    rss_before = peak_rss_gib()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    tiled = fuse_tensors(model, ir, vi, device, tile=tile, overlap=overlap)
    sync(device)
    result["seconds"] = time.perf_counter() - start
    if device.type != "cuda":
        result["peak_rss_gib"] = peak_rss_gib()
        result["peak_rss_before_gib"] = rss_before
        return result
    result["peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / GIB
    torch.cuda.reset_peak_memory_stats(device)
    try:
        start = time.perf_counter()
        untiled = fuse_tensors(model, ir, vi, device)
        sync(device)
        result["untiled_seconds"] = time.perf_counter() - start
        result["untiled_peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / GIB
        result["max_abs_diff"] = (tiled - untiled).abs().max().item()
    except torch.cuda.OutOfMemoryError:
        result["untiled"] = "out of memory"
    torch.cuda.empty_cache()
    return result


def cpu_latency(model: FusionModel, repeats: int, warmup: int) -> dict:
    """Part ``latency``: a 480 x 640 IR/RGB pair on the CPU, colour recombination included."""
    cpu = torch.device("cpu")
    model.to(cpu)
    ir, vi = torch.rand(1, 480, 640), torch.rand(3, 480, 640)
    for _ in range(warmup):
        fuse_tensors(model, ir, vi, cpu)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fuse_tensors(model, ir, vi, cpu)
        times.append(time.perf_counter() - start)
    return {
        "threads": torch.get_num_threads(),
        "repeats": repeats,
        "median_ms": statistics.median(times) * 1e3,
        "min_ms": min(times) * 1e3,
    }


def gpu_throughput(model: FusionModel, device: torch.device, args: argparse.Namespace) -> dict:
    """Part ``throughput``: pairs/s of the network alone for every batch size of the sweep."""
    model.to(device)
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    if args.channels_last:
        model.to(memory_format=torch.channels_last)
    net = torch.compile(model, dynamic=False) if args.compile else model
    dtype = AMP[args.amp]
    sweep: dict[str, Any] = {}
    for batch in args.batches:
        ir = torch.rand(batch, 1, 480, 640, device=device).contiguous(memory_format=fmt)
        vi = torch.rand(batch, 1, 480, 640, device=device).contiguous(memory_format=fmt)
        torch.cuda.reset_peak_memory_stats(device)
        try:
            with torch.inference_mode(), torch.autocast("cuda", dtype=dtype, enabled=dtype is not None):
                for _ in range(args.gpu_warmup):
                    net(ir, vi)
                sync(device)
                start = time.perf_counter()
                for _ in range(args.gpu_iters):
                    net(ir, vi)
                sync(device)
                seconds = time.perf_counter() - start
        except torch.cuda.OutOfMemoryError:
            sweep[str(batch)] = {"error": "out of memory"}
            break
        finally:
            del ir, vi
            torch.cuda.empty_cache()
        sweep[str(batch)] = {
            "pairs_per_s": batch * args.gpu_iters / seconds,
            "ms_per_batch": seconds / args.gpu_iters * 1e3,
            "peak_memory_gib": torch.cuda.max_memory_allocated(device) / GIB,
        }
    return {"amp": args.amp, "channels_last": args.channels_last, "compile": args.compile, "batches": sweep}


def table(report: dict) -> str:
    rows = []
    if "large" in report:
        r = report["large"]
        where = f"tile {r['tile']}, halo {r['halo']}, {report['device']}"
        text = f"{r['seconds']:.2f} s"
        if "peak_rss_gib" in r:
            text += f", peak RSS {r['peak_rss_gib']:.2f} GiB (before: {r['peak_rss_before_gib']:.2f})"
        else:
            text += f", peak {r['peak_memory_gib']:.2f} GiB"
            if "max_abs_diff" in r:
                text += (
                    f"; untiled {r['untiled_seconds']:.2f} s, peak {r['untiled_peak_memory_gib']:.2f} GiB, "
                    f"max abs diff {r['max_abs_diff']:.2e}"
                )
            else:
                text += f"; untiled: {r['untiled']}"
        rows.append([f"{r['size_hw'][0]}x{r['size_hw'][1]} tiled", where, text])
    if "latency" in report:
        r = report["latency"]
        rows.append(
            [
                "480x640 latency, CPU",
                f"{r['threads']} threads, median of {r['repeats']}",
                f"{r['median_ms']:.1f} ms (min {r['min_ms']:.1f})",
            ]
        )
    if isinstance(report.get("throughput"), dict):
        r = report["throughput"]
        flags = f"amp {r['amp']}" + ", channels_last" * r["channels_last"] + ", compiled" * r["compile"]
        for batch, b in r["batches"].items():
            text = b.get("error") or f"{b['pairs_per_s']:.1f} pairs/s, peak {b['peak_memory_gib']:.2f} GiB"
            rows.append([f"throughput, batch {batch}", flags, text])
    return markdown_table(["part", "setting", "result"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--weights", type=Path, help="trained weights (.safetensors)")
    source.add_argument(
        "--method", help=f"registered method (default: {models.DEFAULT_METHOD}); learned ones at random init"
    )
    parser.add_argument("--device", default="auto", help="device of the throughput and large parts (default: auto)")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS), help="parts to run (default: all)")
    parser.add_argument("--repeats", type=int, default=10, help="timed CPU latency runs (default 10)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed CPU latency runs first (default 2)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32], help="GPU batch sizes")
    parser.add_argument("--gpu-iters", type=int, default=50, help="timed GPU batches per size (default 50)")
    parser.add_argument("--gpu-warmup", type=int, default=10, help="untimed GPU batches first (default 10)")
    parser.add_argument("--amp", choices=tuple(AMP), default="off", help="GPU autocast dtype (default: off)")
    parser.add_argument("--channels-last", action="store_true", help="GPU: channels-last weights and inputs")
    parser.add_argument("--compile", action="store_true", help="GPU: torch.compile the model")
    parser.add_argument("--large-size", default="3000x4000", help="HxW of the tiled pair (default 3000x4000)")
    parser.add_argument("--tile", type=int, default=1024, help="core tile size of the large pair (default 1024)")
    parser.add_argument("--tile-overlap", type=int, default=32, help="context around each tile (default 32)")
    parser.add_argument("--out", type=Path, default=Path("fuse_speed.json"), help="JSON file of the results")
    args = parser.parse_args()

    device = resolve_device(args.device)
    model, name, random_init = build(args.method, args.weights)
    report: dict[str, Any] = {
        "method": name,
        "weights": str(args.weights) if args.weights else None,
        "random_init": random_init,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
    }
    if "large" in args.parts:
        h, w = (int(v) for v in args.large_size.lower().split("x"))
        report["large"] = large_pair(model, device, (h, w), args.tile, args.tile_overlap)
    if "latency" in args.parts:
        report["latency"] = cpu_latency(model, args.repeats, args.warmup)
    if "throughput" in args.parts:
        if device.type == "cuda":
            report["throughput"] = gpu_throughput(model, device, args)
        else:
            report["throughput"] = "skipped: needs a CUDA device"
    args.out.write_text(json.dumps(report, indent=2))
    init = " (random init)" if random_init else ""
    print(f"{name}{init}, torch {torch.__version__}\n")
    print(table(report))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

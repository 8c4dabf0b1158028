"""Speed of the fusion metrics: CPU seconds per pair, and total seconds for N pairs on CUDA.

Scores synthetic 640x480 triples (gray IR, RGB visible, their average as the fused image) or, with
``--ir/--vi/--fused``, the images of those folders (matched by file name). For scale: the MATLAB
reference (``analysis_Reference.m`` under GNU Octave) needs about 63 CPU-seconds per 640x480 pair for its
11 metrics (EN, MI, SD, SF, AG, SCD, VIF, Qabf, CC, PSNR, MSE).

    python scripts/metrics_speed.py                          # CPU, plus CUDA when available
    python scripts/metrics_speed.py --device cuda --pairs 361 --batch 64
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from taskfuse.metrics import METRICS, FusionMetrics

REFERENCE_SECONDS_PER_PAIR = 63.0
REFERENCE_METRICS = ("EN", "MI", "SD", "SF", "AG", "SCD", "VIF", "Qabf", "CC", "PSNR", "MSE")

Triple = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def synthetic_pairs(n: int, height: int, width: int, seed: int = 0) -> list[Triple]:
    """n uint8 triples (fused, ir, vi) with structure at several scales; vi is RGB, fused their mean."""
    g = torch.Generator().manual_seed(seed)

    def image(channels: int) -> torch.Tensor:
        coarse = torch.rand(1, channels, height // 16, width // 16, generator=g)
        x = F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=False)[0]
        x = x + 0.15 * torch.rand(channels, height, width, generator=g)
        return (x.clamp(0, 1) * 255).round().to(torch.uint8)

    pairs = []
    for _ in range(n):
        ir, vi = image(1), image(3)
        fused = ((ir.int() + vi.float().mean(0, keepdim=True).round().int() + 1) // 2).to(torch.uint8)
        pairs.append((fused, ir, vi))
    return pairs


def folder_pairs(ir_dir: Path, vi_dir: Path, fused_dir: Path, limit: int) -> list[Triple]:
    """Up to ``limit`` triples read from three folders, matched by file name."""
    from taskfuse.data.io import IMAGE_SUFFIXES, read_image

    names = sorted(p.name for p in fused_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    names = [n for n in names if (ir_dir / n).is_file() and (vi_dir / n).is_file()][:limit]
    if not names:
        raise SystemExit(f"no file name is present in all of {ir_dir}, {vi_dir} and {fused_dir}")

    def load(path: Path) -> torch.Tensor:
        arr = np.ascontiguousarray(read_image(path))
        t = torch.from_numpy(arr)
        return t[None] if t.dim() == 2 else t[..., :3].permute(2, 0, 1).contiguous()

    return [(load(fused_dir / n), load(ir_dir / n), load(vi_dir / n)) for n in names]


def batches(pairs: list[Triple], size: int, device: torch.device) -> list[Triple]:
    """Stack triples of equal shape into batches of up to ``size``, moved to ``device``."""
    groups: dict[tuple, list[Triple]] = {}
    for p in pairs:
        groups.setdefault(tuple(t.shape for t in p), []).append(p)
    out = []
    for group in groups.values():
        for i in range(0, len(group), size):
            chunk = group[i : i + size]
            out.append(tuple(torch.stack([p[k] for p in chunk]).to(device) for k in range(3)))
    return out


def timed(fn: Callable[[], None], device: torch.device) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of one call, synchronising CUDA around it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - wall, time.process_time() - cpu


def run(pairs: list[Triple], batch: int, device: torch.device) -> dict[str, tuple[float, float]]:
    """Per metric and for all metrics together: (wall, CPU) seconds to score every pair on ``device``."""
    data = batches(pairs, batch, device)
    FusionMetrics(names=list(METRICS)).update(*data[0])
    results = {}
    for name in [*METRICS, "all"]:
        metrics = FusionMetrics(names=list(METRICS) if name == "all" else [name])

        def score(metrics: FusionMetrics = metrics) -> None:
            for b in data:
                metrics.update(*b)

        results[name] = timed(score, device)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--device", choices=("auto", "cpu", "cuda"), default="auto", help="auto: CPU, then CUDA when available"
    )
    parser.add_argument("--pairs", type=int, default=361, help="pairs scored on CUDA (default 361)")
    parser.add_argument("--cpu-pairs", type=int, default=4, help="pairs scored on CPU (default 4)")
    parser.add_argument("--batch", type=int, default=64, help="pairs per batch on CUDA (CPU scores one by one)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--size", type=int, nargs=2, default=(480, 640), metavar=("H", "W"))
    parser.add_argument("--ir", type=Path, help="folder of infrared images (with --vi and --fused)")
    parser.add_argument("--vi", type=Path)
    parser.add_argument("--fused", type=Path)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is available")

    use_cpu = args.device in ("auto", "cpu")
    use_cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    n = max(args.pairs if use_cuda else 0, args.cpu_pairs if use_cpu else 0)
    if args.ir or args.vi or args.fused:
        if not (args.ir and args.vi and args.fused):
            raise SystemExit("--ir, --vi and --fused go together")
        pairs = folder_pairs(args.ir, args.vi, args.fused, n)
    else:
        pairs = synthetic_pairs(n, *args.size)
    h, w = pairs[0][1].shape[-2:]
    print(f"{len(pairs)} pairs, first {h}x{w}; torch {torch.__version__}, {torch.get_num_threads()} CPU threads")

    columns: list[tuple[str, dict[str, tuple[float, float]], int]] = []
    if use_cpu:
        cpu_pairs = pairs[: args.cpu_pairs]
        columns.append(("CPU", run(cpu_pairs, 1, torch.device("cpu")), len(cpu_pairs)))
    if use_cuda:
        dev_pairs = pairs[: args.pairs]
        columns.append(
            (torch.cuda.get_device_name(0), run(dev_pairs, args.batch, torch.device("cuda")), len(dev_pairs))
        )

    for label, res, count in columns:
        print(f"\n{label}: {count} pairs" + ("" if label == "CPU" else f", batch {args.batch}"))
        print(f"{'metric':<10}{'wall s total':>14}{'wall s/pair':>14}{'CPU s/pair':>14}")
        for name, (wall, cpu) in res.items():
            print(f"{name:<10}{wall:>14.4f}{wall / count:>14.5f}{cpu / count:>14.5f}")
        ref_wall = sum(res[m][0] for m in REFERENCE_METRICS) / count
        ref_cpu = sum(res[m][1] for m in REFERENCE_METRICS) / count
        print(
            f"reference 11 metrics: {ref_wall:.4f} wall s/pair, {ref_cpu:.4f} CPU s/pair; "
            f"Octave needs {REFERENCE_SECONDS_PER_PAIR:.0f} CPU s/pair "
            f"({REFERENCE_SECONDS_PER_PAIR / ref_cpu:.0f}x in CPU time)"
        )


if __name__ == "__main__":
    main()

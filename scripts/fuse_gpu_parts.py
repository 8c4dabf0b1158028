"""GPU milliseconds of each piece of a ``taskfuse fuse`` batch written as PNG files deflated on the GPU, each piece
captured in a CUDA graph of its own and replayed, as the pipeline replays a whole batch (``GraphReplay``).

    python scripts/fuse_gpu_parts.py --batch 16 --out fuse_gpu_parts.json

The pieces follow a batch through the pipeline: the uint8 pairs' copy to the GPU (``h2d``, pinned, not captured),
the network (``network``, ``FusionModel.fuse_batch``), the 8-bit levels (``levels``), PNG's filtered scanlines
(``scanlines``), their deflate streams (``deflate``), the streams' copy back (``d2h``, not captured), and the whole
batch as the pipeline captures it (``batch``: network to deflate), with the network in channels-last memory apart
(``network_channels_last``). The pairs are random levels of ``--size``; the network's work does not depend on them,
the deflate's little. Prints and writes ``--out`` (JSON) and beside it a Markdown table: ms per batch and per pair.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

import taskfuse
from taskfuse.data.deflate import deflate_literals
from taskfuse.data.io import png_scanlines, quantize


def replayed_ms(work: Callable[[], object], repeats: int, captured: bool = True) -> float:
    """Mean GPU ms of ``work`` over ``repeats`` calls after three to warm up, replayed from a CUDA graph when
    ``captured``, timed by CUDA events."""
    for _ in range(3):
        work()
    if captured:
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            work()
        work = graph.replay
        for _ in range(3):
            work()
    begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    begin.record()
    for _ in range(repeats):
        work()
    end.record()
    torch.cuda.synchronize()
    return begin.elapsed_time(end) / repeats


def levels_of(fused: Tensor) -> Tensor:
    """The 8-bit levels (B, H, W, C) the pipeline writes, of fused images (B, C, H, W) in [0, 1]."""
    return quantize(fused).permute(0, 2, 3, 1).contiguous()


def parts(method: str | None, batch: int, size: tuple[int, int], repeats: int) -> dict[str, float]:
    """GPU ms per batch of each piece, for ``batch`` RGB pairs of ``size`` (H, W) fused by ``method``."""
    torch.manual_seed(0)
    model = taskfuse.load(method, device="cuda")
    ir_host = torch.randint(0, 256, (batch, 1, *size), dtype=torch.uint8).pin_memory()
    vi_host = torch.randint(0, 256, (batch, 3, *size), dtype=torch.uint8).pin_memory()
    ir, vi = ir_host.cuda(), vi_host.cuda()
    fused = model.fuse_batch(ir, vi)
    levels = levels_of(fused)
    scanlines = png_scanlines(levels)
    streams = deflate_literals(scanlines)
    streams_host = torch.empty(streams.shape, dtype=streams.dtype, pin_memory=True)
    pieces: dict[str, tuple[Callable[[], object], bool]] = {
        "h2d": (lambda: (ir_host.cuda(non_blocking=True), vi_host.cuda(non_blocking=True)), False),
        "network": (lambda: model.fuse_batch(ir, vi), True),
        "levels": (lambda: levels_of(fused), True),
        "scanlines": (lambda: png_scanlines(levels), True),
        "deflate": (lambda: deflate_literals(scanlines), True),
        "d2h": (lambda: streams_host.copy_(streams, non_blocking=True), False),
        "batch": (lambda: deflate_literals(png_scanlines(levels_of(model.fuse_batch(ir, vi)))), True),
        "network_channels_last": (lambda: model.fuse_batch(ir, vi, channels_last=True), True),
    }
    return {name: replayed_ms(work, repeats, captured) for name, (work, captured) in pieces.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--method", default=None, help="fusion network (default: taskfuse's default model)")
    parser.add_argument("--batch", type=int, default=16, help="pairs per batch (default 16, as taskfuse fuse)")
    parser.add_argument("--size", type=int, nargs=2, default=(480, 640), metavar=("H", "W"), help="default 480 640")
    parser.add_argument("--repeats", type=int, default=20, help="timed replays of each piece (default 20)")
    parser.add_argument("--out", type=Path, default=Path("fuse_gpu_parts.json"))
    args = parser.parse_args()
    if not torch.cuda.is_available():
        parser.error("this script times CUDA graphs and needs a CUDA GPU")
    if args.batch < 1 or args.repeats < 1:
        parser.error("--batch and --repeats must be at least 1")
    ms = parts(args.method, args.batch, tuple(args.size), args.repeats)
    rows = [f"| {name} | {value:.2f} | {value / args.batch:.3f} |" for name, value in ms.items()]
    table = "\n".join(["| piece | GPU ms per batch | per pair |", "| :-- | --: | --: |", *rows])
    print(table)
    found = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "batch": args.batch, "ms": ms}
    args.out.write_text(json.dumps(found, indent=1))
    args.out.with_suffix(".md").write_text(table + "\n")


if __name__ == "__main__":
    main()

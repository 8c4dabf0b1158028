"""GPU milliseconds of each piece of a ``taskfuse fuse`` batch written as PNG files deflated on the GPU, each piece
replayed through a ``GraphReplay`` of its own, as the pipeline replays a whole batch; a piece whose capture fails
stops the script (``EagerReplayWarning``) instead of timing eager work.

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
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch
from torch import Tensor

import taskfuse
from taskfuse.data.deflate import deflate_literals
from taskfuse.data.io import png_scanlines
from taskfuse.device import EagerReplayWarning, GraphReplay
from taskfuse.inference import batch_levels


def replayed_ms(work: Callable[..., object], inputs: tuple[Tensor, ...], repeats: int, captured: bool) -> float:
    """Mean GPU ms of ``work(*inputs)`` over ``repeats`` calls, timed by CUDA events; when ``captured``, through
    ``GraphReplay`` as the pipeline calls a batch (the first call eager, the second captured, replays after)."""
    run = GraphReplay(work) if captured else work
    for _ in range(3):
        run(*inputs)
    begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    begin.record()
    for _ in range(repeats):
        run(*inputs)
    end.record()
    torch.cuda.synchronize()
    return begin.elapsed_time(end) / repeats


def parts(method: str | None, batch: int, size: tuple[int, int], repeats: int) -> dict[str, float]:
    """GPU ms per batch of each piece, for ``batch`` RGB pairs of ``size`` (H, W) fused by ``method``."""
    torch.manual_seed(0)
    model = taskfuse.load(method, device="cuda")
    ir_host = torch.randint(0, 256, (batch, 1, *size), dtype=torch.uint8).pin_memory()
    vi_host = torch.randint(0, 256, (batch, 3, *size), dtype=torch.uint8).pin_memory()
    ir, vi = ir_host.cuda(), vi_host.cuda()
    fused = model.fuse_batch(ir, vi)
    levels = batch_levels(fused)
    scanlines = png_scanlines(levels)
    streams = deflate_literals(scanlines)
    streams_host = torch.empty(streams.shape, dtype=streams.dtype, pin_memory=True)

    def whole_batch(ir: Tensor, vi: Tensor) -> Tensor:
        return deflate_literals(png_scanlines(batch_levels(model.fuse_batch(ir, vi))))

    def uploaded(ir: Tensor, vi: Tensor) -> tuple[Tensor, Tensor]:
        return ir.cuda(non_blocking=True), vi.cuda(non_blocking=True)

    pieces: dict[str, tuple[Callable[..., object], tuple[Tensor, ...], bool]] = {
        "h2d": (uploaded, (ir_host, vi_host), False),
        "network": (model.fuse_batch, (ir, vi), True),
        "levels": (batch_levels, (fused,), True),
        "scanlines": (png_scanlines, (levels,), True),
        "deflate": (deflate_literals, (scanlines,), True),
        "d2h": (lambda streams: streams_host.copy_(streams, non_blocking=True), (streams,), False),
        "batch": (whole_batch, (ir, vi), True),
        "network_channels_last": (partial(model.fuse_batch, channels_last=True), (ir, vi), True),
    }
    return {name: replayed_ms(work, inputs, repeats, captured) for name, (work, inputs, captured) in pieces.items()}


def main() -> None:
    warnings.simplefilter("error", EagerReplayWarning)
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

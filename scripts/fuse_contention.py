"""What holds one ``taskfuse fuse`` process back on a many-core GPU machine: its calling thread waits for the
interpreter lock that the decoding and encoding threads also take.

    python scripts/fuse_contention.py --folder PNG_PAIRS --device cuda --out fuse_contention.json
    python scripts/fuse_contention.py --folder ../shared/data/msrs_det --device cpu --parts calling --batches 2

Three parts (``--parts``):

* ``calling``: the calling thread's work for one batch of ``--batch`` pairs of ``--folder`` (the default network's
  ``fuse_batch``, rounding to levels, PNG scanlines, the copy to the host), ``--batches`` times after two, in ms
  per batch: alone, and while threads decode pairs (``decode_pair``) or deflate PNG scanlines
  (``png_from_scanlines``) in a loop: 8 of either kind, 8 of each, 16 of each. On CUDA also with that work
  replayed from a CUDA graph (``taskfuse.device.GraphReplay``), one launch where the eager pass has hundreds.
* ``processes``: ``taskfuse.inference.fuse_pairs`` in K processes at once (``--layouts``: K x threads of each kind
  per process), each on every K-th pair of ``--copies`` copies of the folder's pairs (linked under other names),
  timed from a common start after every process has loaded the model and fused 48 pairs, so that start-up is
  left out: the pairs/s the processes fuse together once started.
* ``handoff``: what handing work to ``--workers`` workers costs the calling process, whose interpreter lock bounds
  the run: its CPU time per pair (``RUSAGE_SELF``, the workers' own left out) and the pairs per second, for every
  pair of the folder decoded (``decoded_arrays``, ``2 * (16 + workers)`` ahead, the last 16 kept as a batch
  would keep them) and for an image of each pair's size encoded and written (``write_output``, PNG level 1),
  through threads (their decoding and encoding then count here too), a ``ProcessPoolExecutor`` (arrays pickled
  through its pipe) and ``worker_processes`` (arrays through shared memory), ``--rounds`` times, taking turns.

Results go to ``--out`` as JSON and are printed.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import multiprocessing
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from fuse_workers import linked_copies

from taskfuse import inference
from taskfuse.data.io import png_from_scanlines, png_scanlines
from taskfuse.data.pairs import Pair, find_pairs
from taskfuse.device import EagerReplayWarning, GraphReplay, reuse_freed_memory
from taskfuse.inference import FuseOptions, decode_pair, load

BUSY = {"none": (0, 0), "decode 8": (8, 0), "encode 8": (0, 8), "both 8": (8, 8), "both 16": (16, 16)}
"""Pool threads kept busy during the ``calling`` part: (decoding, encoding)."""


def calling(pairs: list[Pair], device: str, batch: int, batches: int) -> dict[str, list[float]]:
    """ms per batch (wall, calling thread's CPU) of the calling thread's work, by busy pool and by kind of run."""
    model = load(device=device)
    decoded = [decode_pair(pairs[i % len(pairs)], FuseOptions()) for i in range(batch)]
    ir = torch.stack([d[0] for d in decoded]).to(device)
    vi = torch.stack([d[1] for d in decoded]).to(device).contiguous()

    def work(ir: torch.Tensor, vi: torch.Tensor) -> torch.Tensor:
        return png_scanlines(inference.batch_levels(model.fuse_batch(ir, vi)))

    rows = work(ir, vi).cpu()
    host = torch.empty(rows.shape, dtype=torch.uint8, pin_memory=device == "cuda")
    runs: dict[str, Callable[[], torch.Tensor]] = {"eager": lambda: work(ir, vi)}
    if device == "cuda":
        replay = GraphReplay(work)
        for _ in range(3):
            replay(ir, vi)
        if not torch.equal(replay(ir, vi).cpu(), rows):
            raise SystemExit("the replayed batch differs from the eager one")
        runs["CUDA graph"] = lambda: replay(ir, vi)

    def step(run: Callable[[], torch.Tensor]) -> None:
        host.copy_(run(), non_blocking=True)
        if device == "cuda":
            torch.cuda.synchronize()

    stop = threading.Event()

    def decoder() -> None:
        for i in itertools.count():
            if stop.is_set():
                return
            decode_pair(pairs[i % len(pairs)], FuseOptions())

    def encoder() -> None:
        lines = rows.numpy()
        for i in itertools.count():
            if stop.is_set():
                return
            png_from_scanlines(lines[i % len(lines)], (lines.shape[-1] - 1) // ir.shape[-1], 1)

    result: dict[str, list[float]] = {}
    for busy, (decoders, encoders) in BUSY.items():
        stop.clear()
        threads = [threading.Thread(target=decoder, daemon=True) for _ in range(decoders)]
        threads += [threading.Thread(target=encoder, daemon=True) for _ in range(encoders)]
        for t in threads:
            t.start()
        time.sleep(0.3)
        for name, run in runs.items():
            for _ in range(2):
                step(run)
            wall, cpu = time.perf_counter(), time.thread_time()
            for _ in range(batches):
                step(run)
            ms = [(time.perf_counter() - wall) / batches * 1e3, (time.thread_time() - cpu) / batches * 1e3]
            result[f"{busy} / {name}"] = ms
            print(f"busy pools: {busy:8s} {name:10s} {ms[0]:8.2f} ms per batch, calling thread's CPU {ms[1]:7.2f} ms")
        stop.set()
        for t in threads:
            t.join()
    return result


SHARE = r"""
import os, sys, time
from taskfuse.data.pairs import find_pairs
from taskfuse.device import reuse_freed_memory
from taskfuse.inference import fuse_pairs, load

reuse_freed_memory()
folder, k, processes, workers, go, device = sys.argv[1:7]
k, processes, workers = int(k), int(processes), int(workers)
model = load(device=device)
pairs = find_pairs(f"{folder}/ir", f"{folder}/vi")
warm = pairs[k : 48 * processes : processes]
fuse_pairs(model, warm, f"{go}.warm{k}", overwrite=True, progress=False, workers=workers)
open(f"{go}.ready{k}", "w").close()
while not os.path.exists(go):
    time.sleep(0.001)
start = time.time()
summary = fuse_pairs(model, pairs[k::processes], f"{go}.out{k}", overwrite=True, progress=False, workers=workers)
print(start, time.time(), summary.written)
"""


def processes(folder: Path, device: str, layouts: list[str], copies: int, work: Path) -> dict[str, float]:
    """pairs/s of K processes fusing together (K x threads per ``layouts`` entry), start-up left out."""
    linked = linked_copies(folder, copies, work / "pairs")
    result = {}
    for layout in layouts:
        count, workers = (int(v) for v in layout.split("x"))
        go = work / f"go-{layout}"
        env = dict(os.environ, OMP_NUM_THREADS="1")
        children = [
            subprocess.Popen(
                [sys.executable, "-c", SHARE, str(linked), str(k), str(count), str(workers), str(go), device],
                stdout=subprocess.PIPE,
                text=True,
                env=env,
            )
            for k in range(count)
        ]
        while not all((work / f"go-{layout}.ready{k}").exists() for k in range(count)):
            if any(c.poll() not in (None, 0) for c in children):
                raise SystemExit(f"a process of layout {layout} failed")
            time.sleep(0.01)
        go.touch()
        lines = [c.communicate()[0].split() for c in children]
        pairs = sum(int(line[2]) for line in lines)
        rate = pairs / (max(float(line[1]) for line in lines) - min(float(line[0]) for line in lines))
        result[layout] = rate
        print(f"{count} process(es) x {workers} threads of each kind: {pairs} pairs, {rate:.1f} pairs/s")
    return result


@contextmanager
def process_pool(workers: int) -> Iterator[Executor]:
    """A ``ProcessPoolExecutor`` of forked workers set up as ``worker_processes``'s, all started."""
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(workers, context, initializer=inference._worker_start) as pool:
        list(pool.map(abs, range(workers)))
        yield pool


def handoff(pairs: list[Pair], workers: int, rounds: int, work: Path) -> dict[str, list[dict[str, float]]]:
    """Per kind of pool: each round's pairs/s and the calling process's CPU ms per pair, decoding and writing."""
    options = FuseOptions(png_level=1)
    depth = 2 * (16 + workers)
    size = inference.pair_bytes(pairs[0])
    pools: dict[str, Callable[[], Any]] = {
        "threads": lambda: ThreadPoolExecutor(workers),
        "process pool": lambda: process_pool(workers),
        "worker_processes": lambda: inference.worker_processes(workers, size, depth + 2 * 16 + 2),
    }
    images = [decode_pair(pair, options)[1].permute(1, 2, 0).numpy() for pair in pairs[:16]]

    def decode(pool: Executor) -> None:
        ahead, batch = deque(), deque(maxlen=16)
        for pair in pairs:
            ahead.append(pool.submit(inference.decoded_arrays, pair, options))
            if len(ahead) >= depth:
                batch.append(ahead.popleft().result())
        for future in ahead:
            batch.append(future.result())

    def write(pool: Executor, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        ahead = deque()
        for i, pair in enumerate(pairs):
            image = images[i % len(images)]
            ahead.append(pool.submit(inference.write_output, folder / f"{pair.name}.png", image, 0, options))
            if len(ahead) >= depth:
                ahead.popleft().result()
        for future in ahead:
            future.result()

    result: dict[str, list[dict[str, float]]] = {}
    for r in range(rounds):
        for name, make in pools.items():
            with make() as pool:
                row = {}
                for part, run in (("decode", decode), ("write", functools.partial(write, folder=work / name / str(r)))):
                    before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
                    run(pool)
                    after, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter() - start
                    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
                    row |= {f"{part} pairs/s": len(pairs) / wall, f"{part} CPU ms/pair": 1e3 * cpu / len(pairs)}
            result.setdefault(name, []).append(row)
            print(f"{name:16s} " + ", ".join(f"{k} {v:.2f}" for k, v in row.items()), flush=True)
    return result


def main() -> None:
    warnings.simplefilter("error", EagerReplayWarning)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folder", type=Path, required=True, help="a folder of pairs (ir/, vi/), 8-bit PNG")
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument(
        "--parts", nargs="+", default=["calling", "processes"], choices=["calling", "processes", "handoff"]
    )
    parser.add_argument("--batch", type=int, default=16, help="pairs per batch of the calling part (default 16)")
    parser.add_argument("--batches", type=int, default=40, help="timed batches per setting (default 40)")
    parser.add_argument(
        "--layouts",
        nargs="+",
        default=["1x8", "2x4", "2x8", "3x4", "4x3", "4x4"],
        help="processes x threads of each kind per process (default: 1x8 2x4 2x8 3x4 4x3 4x4)",
    )
    parser.add_argument("--copies", type=int, default=4, help="copies of the folder's pairs (default 4)")
    parser.add_argument("--workers", type=int, default=8, help="workers of the handoff part (default 8)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of the handoff part (default 2)")
    parser.add_argument("--out", type=Path, default=Path("fuse_contention.json"))
    args = parser.parse_args()
    reuse_freed_memory()
    pairs = find_pairs(args.folder / "ir", args.folder / "vi")
    report: dict[str, Any] = {"device": args.device, "pairs": len(pairs), "cpus": os.cpu_count()}
    if args.device == "cuda":
        report["gpu"] = torch.cuda.get_device_name()
    if "calling" in args.parts:
        report["calling_ms_per_batch"] = calling(pairs, args.device, args.batch, args.batches)
        report["batch"] = args.batch
    if "processes" in args.parts:
        with tempfile.TemporaryDirectory() as work:
            report["processes_pairs_per_s"] = processes(args.folder, args.device, args.layouts, args.copies, Path(work))
        report["copies"] = args.copies
    if "handoff" in args.parts:
        with tempfile.TemporaryDirectory() as work:
            report["handoff"] = handoff(pairs, args.workers, args.rounds, Path(work))
        report["workers"] = args.workers
    args.out.write_text(json.dumps(report, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

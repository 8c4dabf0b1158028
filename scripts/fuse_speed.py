"""Inference speed of a fusion model: CPU latency, GPU throughput, a large pair fused in tiles, and ``taskfuse fuse``
end to end on a folder of image pairs and on a pair of videos.

    python scripts/fuse_speed.py --weights runs/default/fusion.safetensors --out fuse_speed.json
    python scripts/fuse_speed.py --method seafusion --amp bf16 --channels-last --compile
    python scripts/fuse_speed.py --method laplacian --device cpu --parts latency
    python scripts/fuse_speed.py --parts folder video --folder ../shared/data/msrs_det --pairs 40 \
        --peer seafusion_msrs.safetensors --before /tmp/taskfuse-before --device cpu
    python scripts/fuse_speed.py --parts folder video --folder ../shared/data/msrs_det --device cuda

Six parts (``--parts``):

* ``large``: one 3000 x 4000 (H x W) IR/RGB pair through ``fuse_tensors(tile=N)``: seconds and peak memory
  (``torch.cuda.max_memory_allocated`` on CUDA, the process's peak resident set size on CPU; this part runs
  first so that the CPU peak is its own). On CUDA the pair is also fused untiled where it fits, and the largest
  absolute difference between the tiled and untiled outputs is reported.
* ``latency``: one 480 x 640 IR/RGB pair on the CPU at the default thread count, colour recombination
  included: median and minimum of ``--repeats`` runs after ``--warmup``.
* ``throughput`` (CUDA only): pairs/s for batches (B, 1, 480, 640) of random IR and VIS luminance through the
  network under ``torch.inference_mode``, with optional autocast (``--amp``), channels-last memory format and
  ``torch.compile``; every timing is bracketed by ``torch.cuda.synchronize``. The batch sweep stops at the first
  out-of-memory batch size. ``--display`` times ``FusionModel.fuse_batch`` on 8-bit IR and RGB VIS on the GPU
  instead: the display images as ``taskfuse fuse`` makes them (colour recombination and the model's ``finish``,
  such as the default's stretched display).
* ``folder``: ``taskfuse fuse`` on a folder of ``--pairs`` pairs copied from ``--folder`` (``ir/`` and ``vi/``) into
  a temporary folder, disk to disk, in a separate process (``--runs`` times; ``TIMED_RUN``: the run timed without
  start-up and model loading, checks included, after a first run over ``--first-pairs`` pairs timed apart), with
  the shipped default model and its options as given (``--png-level``, ``--batch``), and at PNG level 6 with one
  pair per batch and one thread of each kind; ``--exts jpg webp`` adds runs of the first setting that write those
  lossy formats (``taskfuse fuse --ext``) instead of PNG; ``--workers-sweep 4 8 16`` times ``taskfuse fuse``'s
  thread counts (``--workers``) in one process after 32 pairs, two runs each, for PNG and each of ``--exts``.
  On CUDA the first setting, which leaves the choice of worker processes to ``taskfuse fuse``
  (``default_processes``), also runs with threads (``after_threads``: ``--no-worker-processes``) and with worker
  processes (``after_processes``: ``--worker-processes``). ``--skip`` leaves settings out by name (such as
  ``after_serial_level6``, slow on thousands of pairs).
  Beside it: where one pair's time goes (``decode_pair``, ``read_pair`` as before the pipeline, the network
  through ``fuse_batch`` with colour, PNG encoding at ``--png-level`` and at 6, the atomic write), each the
  median over ``--profile-pairs`` pairs; and the cost ratio: time per pair end to end over the network's own
  time per pair (``fuse_tensors`` in the same process right after the run), in wall and in CPU time, and on
  Linux the run's CPU time per pair by kind of thread (``TIMED_RUN``), and where the calling thread's wall time
  went: waiting for decoding, fusing, waiting for the encoding threads (which also write image files), writing
  in the calling thread (``FuseSummary.main``).
  ``--peer WEIGHTS`` repeats the end-to-end run and the network time for another model on ``--peer-pairs``
  pairs (such as the official SeAFusion network); ``--before DIR`` runs the same command with the taskfuse
  package found in DIR (an earlier checkout), for a before/after in one run. The settings take turns, run after
  run, so that a change of the machine's load falls on all of them alike.
  PNG file size and encoding time against the level are measured on the fused outputs, and Pillow's encoder at
  levels 1, 6 and 9 on the same images; pairs decoded and images encoded per second by pools of 1, 2, 4, ...
  threads (``pool_scaling``).
* ``precision``: the first ``--pairs`` pairs through ``FusionModel.fuse_batch`` of the shipped default model at
  ``dtype`` bf16 and fp16 against fp32, on ``--device``: the largest difference in grey levels before and after
  rounding to 8 bits, and the share of pixels whose 8-bit value changes; the same against fp32 for consecutive
  pairs fused together in batches of ``--batch`` (default 16), in order and in reverse order, which shows whether
  a pair's output depends on the batch it is fused in.
* ``video``: the first ``--video-frames`` pairs as two H.264 videos (``.mp4``) and ``taskfuse fuse --ir ir.mp4
  --vi vi.mp4 --out fused.mp4``: frames/s, decoding and encoding included.

The load average (``os.getloadavg``) is recorded with every end-to-end run: on a shared machine the ratios
within one run are the figures to compare. The script and each timed run keep the memory torch frees for reuse
(``taskfuse.device.reuse_freed_memory``), as the ``taskfuse`` command does; a ``--before`` package without it runs
as its own command did (``freed_memory_reused`` in the JSON).

A learned ``--method`` without ``--weights`` runs with the weights it ships (the default's), else at random
initialisation (``random_init`` in the JSON): fine for timing, meaningless for image quality. Results go to
``--out`` as JSON and are printed as a Markdown table.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from taskfuse import models
from taskfuse.cli.fuse import model_config
from taskfuse.data.io import PNG_LEVEL, QUALITY, encode_image, quantize, to_unit, write_image
from taskfuse.data.pairs import find_pairs
from taskfuse.device import EagerReplayWarning, available_cpus, resolve_device, reuse_freed_memory
from taskfuse.inference import (
    FORK,
    FuseOptions,
    decode_pair,
    fuse_pairs,
    fuse_tensors,
    load,
    read_pair,
    tile_context,
)
from taskfuse.metrics.table import markdown_table
from taskfuse.models.base import FusionModel
from taskfuse.models.weights import read_meta

PARTS = ("large", "latency", "throughput", "folder", "video", "precision")
RUN = "import sys; from taskfuse.cli.main import main; sys.exit(main(sys.argv[1:]))"
SUMMARY = re.compile(r"fused (\d+) \w+\(s\).* in ([\d.]+) s")
TIMED_RUN = """
import json, os, sys, threading, time, torch
from taskfuse.data.pairs import find_pairs
from taskfuse.inference import FuseOptions, fuse_pairs, fuse_tensors, load, read_pair
try:
    from taskfuse.device import reuse_freed_memory
except ImportError:
    reuse_freed_memory = lambda: False
reused = reuse_freed_memory()
ir, vi, out, weights, device, kwargs, probes, first = sys.argv[1:9]
device = torch.device(device)
model = load(weights=weights, device=str(device)) if weights else load(device=str(device))
pairs = find_pairs(ir, vi)
first_s = None
if int(first):
    first_s = time.perf_counter()
    fuse_pairs(model, pairs[: int(first)], out + "-first", device=device, progress=False, **json.loads(kwargs))
    first_s = time.perf_counter() - first_s

def thread_cpu():
    seconds, comms = {}, {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                head, tail = f.read().rsplit(")", 1)
        except OSError:
            continue
        fields = tail.split()
        seconds[int(tid)] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        comms[int(tid)] = head.split("(", 1)[1]
    return seconds, comms

def kind(name):
    return "main" if name == "MainThread" else name.rsplit("_", 1)[0].removeprefix("taskfuse-")

def sample(stop, seen, names, start):
    while True:
        seconds, comms = thread_cpu()
        names.update({tid: f"other ({comm})" for tid, comm in comms.items() if tid not in names})
        names.update({t.native_id: kind(t.name) for t in threading.enumerate()})
        seen.update({tid: s - start.get(tid, 0.0) for tid, s in seconds.items()})
        if stop.wait(0.05):
            return

def children_cpu():
    try:
        import resource
    except ImportError:
        return 0.0
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime

per_thread = os.path.isdir("/proc/self/task")
if per_thread:
    stop, seen, names = threading.Event(), {}, {}
    sampler = threading.Thread(target=sample, args=(stop, seen, names, thread_cpu()[0]), name="sampler")
    sampler.start()
wall, cpu, workers = time.perf_counter(), time.process_time(), children_cpu()
summary = fuse_pairs(model, pairs, out, device=device, progress=False, **json.loads(kwargs))
wall, cpu, workers = time.perf_counter() - wall, time.process_time() - cpu, children_cpu() - workers
threads = {"worker processes": workers} if workers else {}
if per_thread:
    stop.set()
    sampler.join()
    for tid, s in seen.items():
        k = names.get(tid, "other")
        if k != "sampler":
            threads[k] = threads.get(k, 0.0) + s
network = []
for pair in pairs[: int(probes)]:
    a, b = read_pair(pair, FuseOptions())
    w, c = time.perf_counter(), time.process_time()
    fuse_tensors(model, a, b, device)
    network.append((time.perf_counter() - w, time.process_time() - c))
network.sort()
median = network[len(network) // 2]
print(json.dumps({"pairs": summary.written, "wall_s": wall, "cpu_s": cpu + workers, "network": median,
                  "threads_cpu_s": threads, "first_s": first_s, "main_s": getattr(summary, "main", {}),
                  "gpu_s": getattr(summary, "gpu", None), "reused": reused}))
"""
"""``fuse_pairs`` as ``taskfuse fuse`` runs it, timed (wall and CPU time of this process and of the worker
processes it forks and ends, ``worker processes``) around the run alone.
Before it the same process fuses its first ``first`` pairs into another folder, timed apart: what a fresh
process pays once (cuDNN's choices, loading kernels), which a run of a few hundred pairs would otherwise spread
over its pairs (0: none, the timed run starts cold). After it, the model's own time per pair (``fuse_tensors`` on
decoded pairs, the median of ``probes``) in the same process; the API is the same in taskfuse versions before
the pipeline (``--before``). Where Linux shows each thread's CPU time (``/proc/self/task``), a sampler reads it
every 50 ms during the run and sums it by kind of thread: ``main``, the pools' ``decode`` and ``encode`` threads,
and ``other (NAME)`` for the threads Python did not start, by their name in ``/proc`` (torch's intra-op pool,
CUDA's and OpenCV's); a thread's last 50 ms before it ends may be missed."""
CWD = tempfile.gettempdir()
"""Working directory of the timed runs (``_env``)."""
AMP = {"bf16": torch.bfloat16, "fp16": torch.float16, "off": None}
GIB = 2**30


def build(method: str | None, weights: Path | None, config: dict[str, Any]) -> tuple[FusionModel, str, bool]:
    """The model on the CPU in eval mode, its method name, and whether it is a learned net at random init (the
    default method loads its shipped weights, as ``taskfuse.load`` does); ``config`` as ``--set`` gives it."""
    if weights is not None:
        return load(method, weights, "cpu", **config), read_meta(weights)["method"], False
    name = method or models.DEFAULT_METHOD
    if models.get(name).weights is not None:
        return load(name, None, "cpu", **config), name, False
    model = models.create(name, **config).eval()
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
    """Part ``throughput``: pairs/s of the network alone, or of ``fuse_batch`` (``--display``), for every batch
    size of the sweep."""
    model.to(device)
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    if args.channels_last:
        model.to(memory_format=torch.channels_last)
    net = torch.compile(model, dynamic=False) if args.compile and not args.display else model
    dtype = AMP[args.amp]
    sweep: dict[str, Any] = {}
    for batch in args.batches:
        if args.display:
            ir = torch.randint(0, 256, (batch, 1, 480, 640), dtype=torch.uint8, device=device)
            vi = torch.randint(0, 256, (batch, 3, 480, 640), dtype=torch.uint8, device=device)
            precision = "fp32" if dtype is None else args.amp
            step = partial(model.fuse_batch, ir, vi, precision, args.channels_last, args.compile)
        else:
            ir = torch.rand(batch, 1, 480, 640, device=device).contiguous(memory_format=fmt)
            vi = torch.rand(batch, 1, 480, 640, device=device).contiguous(memory_format=fmt)
            step = partial(autocast_call, net, ir, vi, dtype)
        torch.cuda.reset_peak_memory_stats(device)
        try:
            with torch.inference_mode():
                for _ in range(args.gpu_warmup):
                    step()
                sync(device)
                start = time.perf_counter()
                for _ in range(args.gpu_iters):
                    step()
                sync(device)
                seconds = time.perf_counter() - start
        except torch.cuda.OutOfMemoryError:
            sweep[str(batch)] = {"error": "out of memory"}
            break
        finally:
            del ir, vi, step
            torch.cuda.empty_cache()
        sweep[str(batch)] = {
            "pairs_per_s": batch * args.gpu_iters / seconds,
            "ms_per_batch": seconds / args.gpu_iters * 1e3,
            "peak_memory_gib": torch.cuda.max_memory_allocated(device) / GIB,
        }
    return {
        "amp": args.amp,
        "channels_last": args.channels_last,
        "compile": args.compile,
        "display": args.display,
        "batches": sweep,
    }


def autocast_call(net: Any, ir: Tensor, vi: Tensor, dtype: torch.dtype | None) -> None:
    """``net(ir, vi)`` under CUDA autocast to ``dtype`` (off when None)."""
    with torch.autocast("cuda", dtype=dtype, enabled=dtype is not None):
        net(ir, vi)


def median_ms(fn: Any, items: list, device: torch.device) -> float:
    """Median wall time of ``fn(item)`` over ``items`` in ms (after one untimed call), CUDA synchronised."""
    fn(items[0])
    times = []
    for item in items:
        sync(device)
        start = time.perf_counter()
        fn(item)
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def copy_pairs(source: Path, n: int, into: Path) -> Path:
    """The first ``n`` pairs of ``source`` (``ir/`` and ``vi/``) copied into ``into``."""
    pairs = find_pairs(source / "ir", source / "vi")[:n]
    for pair in pairs:
        for side, path in (("ir", pair.ir), ("vi", pair.vi)):
            (into / side).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, into / side / path.name)
    return into


def fuse_command(args: list[str], package: Path | None = None) -> dict[str, float]:
    """Run ``taskfuse fuse ARGS`` in a new process: its rate from the summary line, and the load average."""
    load_before = os.getloadavg()[0]
    done = subprocess.run(
        [sys.executable, "-c", RUN, "fuse", *args], capture_output=True, text=True, env=_env(package), cwd=CWD
    )
    if done.returncode != 0:
        raise RuntimeError(f"taskfuse fuse {' '.join(args)} failed:\n{done.stderr}")
    count, seconds = SUMMARY.search(done.stdout).groups()
    return {"per_s": int(count) / float(seconds), "load": (load_before + os.getloadavg()[0]) / 2}


def timed_run(
    data: Path,
    out: Path,
    device: torch.device,
    kwargs: dict,
    weights: Path | None,
    probes: int,
    package: Path | None,
    first: int = 0,
) -> dict[str, Any]:
    """``TIMED_RUN`` in a new process (with the taskfuse package of ``package`` when given): pairs/s, the cost per
    pair in wall and CPU time over the model's own, and the load average."""
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(f"{out}-first", ignore_errors=True)
    argv = [str(data / "ir"), str(data / "vi"), str(out), str(weights.resolve()) if weights else "", str(device)]
    argv.append(json.dumps(kwargs))
    load_before = os.getloadavg()[0]
    done = subprocess.run(
        [sys.executable, "-c", TIMED_RUN, *argv, str(probes), str(first)],
        capture_output=True,
        text=True,
        env=_env(package),
        cwd=CWD,
    )
    if done.returncode != 0:
        raise RuntimeError(f"timed fuse of {data} failed:\n{done.stderr}")
    r = json.loads(done.stdout.strip().splitlines()[-1])
    net_wall, net_cpu = r["network"]
    return {
        "per_s": r["pairs"] / r["wall_s"],
        "wall_ms_per_pair": r["wall_s"] / r["pairs"] * 1e3,
        "cpu_ms_per_pair": r["cpu_s"] / r["pairs"] * 1e3,
        "network_wall_ms": net_wall * 1e3,
        "network_cpu_ms": net_cpu * 1e3,
        "wall_ratio": r["wall_s"] / r["pairs"] / net_wall,
        "cpu_ratio": r["cpu_s"] / r["pairs"] / net_cpu,
        "threads_cpu_ms_per_pair": {k: v / r["pairs"] * 1e3 for k, v in r.get("threads_cpu_s", {}).items()},
        "main_ms_per_pair": {k: v / r["pairs"] * 1e3 for k, v in r.get("main_s", {}).items()},
        "gpu_ms_per_pair": r["gpu_s"] / r["pairs"] * 1e3 if r.get("gpu_s") is not None else None,
        "load": (load_before + os.getloadavg()[0]) / 2,
        "first_pairs": first,
        "first_s": r.get("first_s"),
        "freed_memory_reused": r.get("reused", False),
    }


def _env(package: Path | None) -> dict[str, str]:
    """The environment of a timed run: the taskfuse package of ``package`` (an earlier checkout), else this one's.
    Runs start in ``CWD``, since ``python -c`` puts its working directory first on the module path, where a
    checkout's own ``taskfuse/`` would shadow the package asked for."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str((package or Path(__file__).resolve().parent.parent).resolve())
    return env


def medians(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The median of every figure of several runs (of every entry, for a dict of figures), and the runs."""

    def median(values: list[Any]) -> Any:
        if isinstance(values[0], dict):
            return {k: median([v.get(k, 0.0) for v in values]) for k in values[0]}
        return None if None in values else statistics.median(values)

    return {**{k: median([r[k] for r in results]) for k in results[0]}, "runs": results}


def stages(model_name: str | Path, pairs: list, device: torch.device, png_level: int, tmp: Path) -> dict:
    """Where one pair's time goes, each stage's median over ``pairs`` in ms (module docstring)."""
    model = load(weights=model_name, device=str(device)) if isinstance(model_name, Path) else load(device=str(device))
    options = FuseOptions()
    decoded = [decode_pair(p, options) for p in pairs]
    fused = [quantize(model.fuse_batch(ir[None], vi[None])[0]).permute(1, 2, 0).cpu().numpy() for ir, vi in decoded]
    arrays = [a if a.shape[-1] == 3 else a[..., 0] for a in fused]
    data = [encode_image(a, ".png", png_level) for a in arrays]
    return {
        "decode_ms": median_ms(lambda p: decode_pair(p, options), pairs, device),
        "decode_before_ms": median_ms(lambda p: read_pair(p, options), pairs, device),
        "network_ms": median_ms(lambda d: model.fuse_batch(d[0][None], d[1][None]), decoded, device),
        "encode_ms": median_ms(lambda a: encode_image(a, ".png", png_level), arrays, device),
        "encode_level6_ms": median_ms(lambda a: encode_image(a, ".png", 6), arrays, device),
        "write_ms": median_ms(lambda d: write_image(tmp / "stage.png", d), data, device),
        "png_level": png_level,
        "pairs": len(pairs),
    }


def pool_scaling(pairs: list, png_level: int) -> dict[str, dict[str, float]]:
    """Pairs decoded (``decode_pair``) and colour images of their size encoded (their visible images, as PNG at
    ``png_level``) per second by a pool of 1, 2, 4, ... threads up to the CPUs this process may use: how far the
    pools scale with the cores, which the GIL would cap."""
    options = FuseOptions()
    images = [np.ascontiguousarray(decode_pair(p, options)[1].permute(1, 2, 0).numpy()) for p in pairs]
    cpus = available_cpus()
    jobs = {
        "decode": (partial(decode_pair, options=options), pairs),
        "encode": (partial(encode_image, suffix=".png", png_level=png_level), images),
    }
    result: dict[str, dict[str, float]] = {}
    n = 1
    while n <= cpus:
        result[str(n)] = {}
        for name, (work, items) in jobs.items():
            with ThreadPoolExecutor(n) as pool:
                start = time.perf_counter()
                list(pool.map(work, items))
                result[str(n)][name] = len(items) / (time.perf_counter() - start)
        n *= 2
    return result


def pillow_png(image: np.ndarray, level: int) -> bytes:
    """The same image as Pillow's PNG encoder writes it at zlib ``level`` (the comparison of ``png_levels``)."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", compress_level=level)
    return buffer.getvalue()


def png_levels(folder: Path, n: int) -> dict[str, dict[str, float]]:
    """Mean file size (KiB) and median encoding time (ms) over ``n`` fused images of ``folder``: per PNG level of
    ``encode_image``, with Pillow's PNG encoder at levels 1, 6 and 9 (``pillow-<level>``), and as JPEG and WebP at
    ``encode_image``'s default quality (``jpg``, ``webp``: lossy, the outputs ``taskfuse fuse --ext`` offers)."""
    images = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(folder.glob("*.png"))[:n]]
    cpu = torch.device("cpu")
    encoders = {str(level): partial(encode_image, suffix=".png", png_level=level) for level in range(10)}
    encoders |= {f"pillow-{level}": partial(pillow_png, level=level) for level in (1, 6, 9)}
    encoders |= {ext: partial(encode_image, suffix=f".{ext}") for ext in ("jpg", "webp")}
    return {
        name: {
            "kib": float(np.mean([len(encode(a)) for a in images])) / 1024,
            "ms": median_ms(encode, images, cpu),
        }
        for name, encode in encoders.items()
    }


def workers_sweep(data: Path, device: torch.device, counts: list[int], exts: list[str], tmp: Path) -> dict:
    """``taskfuse fuse``'s pairs/s with each thread count of ``counts`` (``--workers``: decoding and encoding threads
    each), for PNG and each of ``exts``: in this process, after fusing 32 pairs, two runs of each, outputs
    written to fresh folders."""
    model = load(device=str(device))
    pairs = find_pairs(data / "ir", data / "vi")
    fuse_pairs(model, pairs[:32], tmp / "sweep-warm", device=device, progress=False, workers=max(counts))
    found: dict[str, dict[str, list[float]]] = {}
    for ext in ("png", *exts):
        for n in counts:
            for run in range(2):
                out = tmp / f"sweep-{ext}-{n}-{run}"
                done = fuse_pairs(model, pairs, out, f".{ext}", device=device, progress=False, workers=n)
                found.setdefault(ext, {}).setdefault(str(n), []).append(done.written / done.seconds)
                shutil.rmtree(out)
    return found


def folder_part(args: argparse.Namespace, device: torch.device, tmp: Path) -> dict[str, Any]:
    """Part ``folder`` (module docstring)."""
    if "after" in args.skip:
        raise SystemExit("--skip: the first setting, after, always runs; the others are measured against it")
    data = copy_pairs(args.folder, args.pairs, tmp / "pairs")
    pairs = find_pairs(data / "ir", data / "vi")
    result: dict[str, Any] = {"pairs": len(pairs), "size_hw": list(decode_pair(pairs[0], FuseOptions())[0].shape[-2:])}
    result["stages"] = stages("lite", pairs[: args.profile_pairs], device, args.png_level, tmp)
    result["pools"] = pool_scaling(pairs, args.png_level)
    after = {"png_level": args.png_level} | ({"batch": args.batch} if args.batch else {})
    serial = {"png_level": 6, "batch": 1, "workers": 1}
    settings = {"after": (after, None), "after_serial_level6": (serial, None)}
    settings |= {f"after_{ext}": (after | {"ext": f".{ext}"}, None) for ext in args.exts}
    if device.type == "cuda" and FORK:
        settings["after_threads"] = (after | {"processes": False}, None)
        settings["after_processes"] = (after | {"processes": True}, None)
    settings = {name: setting for name, setting in settings.items() if name not in args.skip}
    if args.before is not None:
        settings["before"] = ({}, args.before)
    runs: dict[str, list] = {name: [] for name in settings}
    for _ in range(args.runs):
        for name, (kwargs, package) in settings.items():
            runs[name].append(
                timed_run(data, tmp / f"out-{name}", device, kwargs, None, args.probes, package, args.first_pairs)
            )
    result |= {name: medians(r) for name, r in runs.items()}
    result["png_levels"] = png_levels(tmp / "out-after", args.profile_pairs)
    if args.workers_sweep:
        result["workers_sweep"] = workers_sweep(data, device, args.workers_sweep, args.exts, tmp)
    if args.peer is not None:
        peer_data = copy_pairs(args.folder, args.peer_pairs, tmp / "peer_pairs")
        peer = {"weights": str(args.peer), "pairs": args.peer_pairs}
        for name, (kwargs, package) in settings.items():
            if name in ("after", "before"):
                probes = min(args.probes, args.peer_pairs)
                peer[name] = timed_run(
                    peer_data, tmp / "peer", device, kwargs, args.peer, probes, package, args.first_pairs
                )
        result["peer"] = peer
    return result


def video_part(args: argparse.Namespace, device: torch.device, tmp: Path) -> dict[str, Any]:
    """Part ``video`` (module docstring): two H.264 videos made from real pairs, fused into a third."""
    from taskfuse.data.video import VideoWriter

    data = copy_pairs(args.folder, args.video_frames, tmp / "frames")
    pairs = find_pairs(data / "ir", data / "vi")
    options = FuseOptions()
    h, w = decode_pair(pairs[0], options)[0].shape[-2:]
    for side in ("ir", "vi"):
        with VideoWriter(tmp / f"{side}.mp4", Fraction(25), w, h) as writer:
            for pair in pairs:
                ir, vi = read_pair(pair, options)
                image = (ir if side == "ir" else vi).expand(3, -1, -1)
                writer.write(writer.convert(quantize(to_unit(image)).permute(1, 2, 0).numpy()))
    run = ["--ir", str(tmp / "ir.mp4"), "--vi", str(tmp / "vi.mp4"), "--device", str(device), "--out"]
    result = medians([fuse_command([*run, str(tmp / f"fused{i}.mp4")]) for i in range(args.runs)])
    return {"frames": len(pairs), "size_hw": [h, w], **result}


def _threads_text(threads: dict[str, float]) -> str:
    """The CPU time per pair by kind of thread, for a table cell ("" where it was not measured)."""
    if not threads:
        return ""
    return "; CPU ms per pair by thread: " + ", ".join(f"{k} {v:.0f}" for k, v in sorted(threads.items()))


def _main_text(main: dict[str, float]) -> str:
    """Where the calling thread's wall time per pair went (``FuseSummary.main``), for a table cell."""
    if not main:
        return ""
    names = {
        "decode": "waiting for decoding",
        "fuse": "fusing",
        "encode": "waiting for the encoding threads",
        "write": "writing in this thread",
    }
    return "; main thread ms per pair: " + ", ".join(f"{names.get(k, k)} {v:.2f}" for k, v in main.items())


def _run_row(name: str, r: dict[str, Any]) -> list[str]:
    loads = ", ".join(f"{x['load']:.1f}" for x in r.get("runs", [r]))
    return [
        name,
        f"load {loads}",
        f"{r['per_s']:.3g} pairs/s; per pair {r['wall_ms_per_pair']:.0f} ms wall, {r['cpu_ms_per_pair']:.0f} ms CPU = "
        f"{r['wall_ratio']:.2f}x / {r['cpu_ratio']:.2f}x the network ({r['network_wall_ms']:.0f} / "
        f"{r['network_cpu_ms']:.0f} ms)"
        + _threads_text(r.get("threads_cpu_ms_per_pair", {}))
        + _main_text(r.get("main_ms_per_pair", {}))
        + (f"; the GPU on the batches {r['gpu_ms_per_pair']:.2f} ms per pair" if r.get("gpu_ms_per_pair") else "")
        + (f"; before it, the first {r['first_pairs']} pairs {r['first_s']:.2f} s" if r.get("first_s") else ""),
    ]


PRECISION_ROWS = {
    "bf16": "fuse_batch bf16 vs fp32",
    "fp16": "fuse_batch fp16 vs fp32",
    "batch": "fp32, batches of {batch} vs one pair at a time",
    "reversed": "fp32, batches of {batch} in reverse order vs one pair at a time",
}
"""The comparisons of the ``precision`` part, each against fp32 one pair at a time, and their table labels."""


def precision_part(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """Part ``precision`` (module docstring)."""
    model = load(device=str(device))
    pairs = find_pairs(args.folder / "ir", args.folder / "vi")[: args.pairs]
    worst = {kind: {"max_levels": 0.0, "max_levels_8bit": 0, "changed": 0, "values": 0} for kind in PRECISION_ROWS}

    def compare(kind: str, out: torch.Tensor, reference: torch.Tensor) -> None:
        w = worst[kind]
        w["max_levels"] = max(w["max_levels"], (out - reference).abs().max().item() * 255)
        levels = (quantize(out).int() - quantize(reference).int()).abs()
        w["max_levels_8bit"] = max(w["max_levels_8bit"], int(levels.max()))
        w["changed"] += int((levels > 0).sum())
        w["values"] += levels.numel()

    singles = []
    for pair in pairs:
        ir, vi = (x[None] for x in decode_pair(pair, FuseOptions()))
        reference = model.fuse_batch(ir, vi)
        singles.append((ir, vi, reference))
        for dtype in ("bf16", "fp16"):
            compare(dtype, model.fuse_batch(ir, vi, dtype=dtype), reference)
    batch = args.batch or 16
    for start in range(0, len(singles) - batch + 1, batch):
        group = singles[start : start + batch]
        if len({x[0].shape for x in group}) > 1:
            continue
        ir, vi, reference = (torch.cat(parts) for parts in zip(*group, strict=True))
        compare("batch", model.fuse_batch(ir, vi), reference)
        compare("reversed", model.fuse_batch(ir.flip(0), vi.flip(0)).flip(0), reference)
    return {
        "pairs": len(pairs),
        "batch_size": batch,
        **{k: w | {"changed_share": w["changed"] / max(w["values"], 1)} for k, w in worst.items()},
    }


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
    if "folder" in report:
        r = report["folder"]
        st = r["stages"]
        rows.append(
            [
                f"per pair, {r['size_hw'][0]}x{r['size_hw'][1]}",
                f"median of {st['pairs']} pairs",
                f"decode {st['decode_ms']:.1f} ms (before: {st['decode_before_ms']:.1f}), network "
                f"{st['network_ms']:.1f}, encode PNG level {st['png_level']} {st['encode_ms']:.1f} (level 6: "
                f"{st['encode_level6_ms']:.1f}), write {st['write_ms']:.2f}",
            ]
        )
        for n, v in r.get("pools", {}).items():
            rows.append(
                [
                    f"{n} pool threads",
                    f"{r['pairs']} pairs",
                    f"decode {v['decode']:.1f} pairs/s, encode {v['encode']:.1f} images/s",
                ]
            )
        rows += [
            _run_row(f"taskfuse fuse, {k}", v)
            for k, v in r.items()
            if k in ("after", "before") or k.startswith("after_")
        ]
        if "peer" in r:
            p = r["peer"]
            for key in ("after", "before"):
                if key in p:
                    rows.append(_run_row(f"{Path(p['weights']).name}, {key}, {p['pairs']} pairs", p[key]))
        for ext, by_count in r.get("workers_sweep", {}).items():
            for n, rates in by_count.items():
                runs = ", ".join(f"{x:.3g}" for x in rates)
                rows.append([f"--workers {n}, {ext.upper()} outputs", "in one process", f"{runs} pairs/s"])
        for level, v in r["png_levels"].items():
            name = f"Pillow PNG level {level[7:]}" if level.startswith("pillow-") else f"PNG level {level}"
            name = f"{level.upper()}, quality {QUALITY}" if level in ("jpg", "webp") else name
            rows.append([name, "fused 640x480 outputs", f"{v['kib']:.0f} KiB, {v['ms']:.1f} ms"])
    if "precision" in report:
        r = report["precision"]
        for kind, what in PRECISION_ROWS.items():
            p = r[kind]
            rows.append(
                [
                    what.format(batch=r.get("batch_size", 16)),
                    f"{r['pairs']} pairs",
                    f"max {p['max_levels']:.2f} levels; 8-bit: max {p['max_levels_8bit']}, "
                    f"{p['changed_share']:.3%} of values changed",
                ]
            )
    if "video" in report:
        r = report["video"]
        loads = ", ".join(f"{x['load']:.1f}" for x in r["runs"])
        rows.append(
            [
                f"video {r['size_hw'][0]}x{r['size_hw'][1]}, {r['frames']} frames",
                f"load {loads}",
                f"{r['per_s']:.2f} frames/s",
            ]
        )
    return markdown_table(["part", "setting", "result"], rows)


def main() -> None:
    warnings.simplefilter("error", EagerReplayWarning)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--weights", type=Path, help="trained weights (.safetensors)")
    source.add_argument(
        "--method", help=f"registered method (default: {models.DEFAULT_METHOD}); learned ones at random init"
    )
    parser.add_argument(
        "--set", nargs="+", default=[], metavar="KEY=VALUE", help="model config keys, as taskfuse fuse --set"
    )
    parser.add_argument("--device", default="auto", help="device of the throughput and large parts (default: auto)")
    parser.add_argument(
        "--parts", nargs="+", choices=PARTS, default=list(PARTS[:3]), help="parts to run (default: the first three)"
    )
    parser.add_argument("--repeats", type=int, default=10, help="timed CPU latency runs (default 10)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed CPU latency runs first (default 2)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32], help="GPU batch sizes")
    parser.add_argument("--gpu-iters", type=int, default=50, help="timed GPU batches per size (default 50)")
    parser.add_argument("--gpu-warmup", type=int, default=10, help="untimed GPU batches first (default 10)")
    parser.add_argument("--amp", choices=tuple(AMP), default="off", help="GPU autocast dtype (default: off)")
    parser.add_argument("--channels-last", action="store_true", help="GPU: channels-last weights and inputs")
    parser.add_argument("--compile", action="store_true", help="GPU: torch.compile the model")
    parser.add_argument(
        "--display", action="store_true", help="throughput: time fuse_batch (colour and finish) on 8-bit pairs"
    )
    parser.add_argument("--large-size", default="3000x4000", help="HxW of the tiled pair (default 3000x4000)")
    parser.add_argument("--tile", type=int, default=1024, help="core tile size of the large pair (default 1024)")
    parser.add_argument("--tile-overlap", type=int, default=32, help="context around each tile (default 32)")
    parser.add_argument("--folder", type=Path, help="folder with ir/ and vi/ pairs for the folder and video parts")
    parser.add_argument("--pairs", type=int, default=301, help="pairs copied for the folder part (default 301)")
    parser.add_argument("--profile-pairs", type=int, default=20, help="pairs timed stage by stage (default 20)")
    parser.add_argument("--runs", type=int, default=3, help="end-to-end runs per setting (default 3)")
    parser.add_argument("--probes", type=int, default=5, help="pairs timed through the network alone (default 5)")
    parser.add_argument(
        "--first-pairs",
        type=int,
        default=16,
        help="pairs fused in each timed process before its timed run, timed apart (default 16; 0: the run starts cold)",
    )
    parser.add_argument("--png-level", type=int, default=PNG_LEVEL, help=f"--png-level (default {PNG_LEVEL})")
    parser.add_argument("--batch", type=int, help="--batch of the end-to-end run (default: taskfuse fuse's)")
    parser.add_argument(
        "--exts", nargs="+", choices=("jpg", "webp"), default=[], help="end-to-end runs writing these formats too"
    )
    parser.add_argument(
        "--workers-sweep",
        type=int,
        nargs="+",
        default=[],
        metavar="N",
        help="folder: pairs/s of taskfuse fuse with each thread count, in one process (PNG and --exts)",
    )
    parser.add_argument("--peer", type=Path, help="weights of a second model timed on the folder (e.g. SeAFusion)")
    parser.add_argument("--peer-pairs", type=int, default=10, help="pairs of the peer's run (default 10)")
    parser.add_argument("--before", type=Path, help="folder holding an earlier taskfuse package, run alike")
    parser.add_argument("--skip", nargs="+", default=[], metavar="SETTING", help="folder settings left out by name")
    parser.add_argument("--video-frames", type=int, default=100, help="frames of the video part (default 100)")
    parser.add_argument("--out", type=Path, default=Path("fuse_speed.json"), help="JSON file of the results")
    args = parser.parse_args()

    device = resolve_device(args.device)
    reused = reuse_freed_memory()
    model, name, random_init = build(args.method, args.weights, model_config(args.set))
    report: dict[str, Any] = {
        "freed_memory_reused": reused,
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
    if {"folder", "video", "precision"} & set(args.parts):
        if args.folder is None:
            parser.error("the folder and video parts need --folder with ir/ and vi/ pairs")
        report["cpus"] = os.cpu_count()
        with tempfile.TemporaryDirectory(prefix="fuse_speed_") as tmp:
            if "folder" in args.parts:
                report["folder"] = folder_part(args, device, Path(tmp))
            if "video" in args.parts:
                report["video"] = video_part(args, device, Path(tmp))
            if "precision" in args.parts:
                report["precision"] = precision_part(args, device)
    args.out.write_text(json.dumps(report, indent=2))
    init = " (random init)" if random_init else ""
    print(f"{name}{init}, torch {torch.__version__}\n")
    print(table(report))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

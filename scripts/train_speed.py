"""Training speed of each method at its paper batch size and crop: images/s per training phase, and where a step's
time goes.

    python scripts/train_speed.py --device cuda --steps 50 --out speed/
    python scripts/train_speed.py --methods psfusion mafs --channels-last --compile --workers 8 --out speed/
    python scripts/train_speed.py --compare --methods psfusion fgfusion --out speed/   # as given vs fast settings
    python scripts/train_speed.py --compare --fast-compile-mode reduce-overhead --methods mafs --phases train
    python scripts/train_speed.py --profile speed/profile --methods dsifuse --out speed/
    torchrun --nproc_per_node 2 scripts/train_speed.py --methods psfusion --out speed/   # DDP: images/s of all GPUs
    python scripts/train_speed.py --device cpu --small --steps 3 --methods lite --compare --out /tmp/speed  # smoke

Each method runs from its ``<method>_synthetic`` config (the paper's recipe on synthetic scenes; a method without
one, such as ``lite``, from its own config with synthetic scenes in place of its data) through the real engine
(``taskfuse.train.loop.Trainer.run_step``): same strategy, optimisers, autocast, EMA and data pipeline. Every phase
of the strategy is timed separately (SeAFusion: fusion with the segmenter in the loop, and the segmenter; MAFS:
pretext, teacher and train; ``--phases`` picks some by name), on its last block of steps so that SeAFusion's
fusion phase includes the semantic loss.

The ``--scenes`` scenes are rendered once, before any timing, by a pool of processes, and every phase's batches are
then cut from those samples in memory (rendering is the synthetic dataset's cost, not training's): the timed steps
run the augmentation, the batching and the copies to the device, in the training process (``--workers 0``) or in
loader processes. ``--warmup`` untimed steps per phase come first (CUDA warm-up, torch.compile's compilation).

Options of the engine: ``--channels-last`` (``train.channels_last``), ``--compile`` and ``--compile-mode``
(``train.compile``, ``train.compile_mode``), ``--amp`` / ``--no-amp`` (``train.amp``; bf16 autocast on CUDA is the
default), ``--workers`` (``data.workers``, a number or ``auto``); any other key with ``--set`` (e.g.
``--set train.ddp_static_graph=true train.ddp_bucket_mb=50``). ``--compare`` runs every method twice, with the
options given and with the fast settings added (channels_last, torch.compile, cuDNN's algorithm search, loader
workers ``auto``; ``--fast-compile-mode reduce-overhead`` makes its compiled network replay CUDA graphs), and
tabulates images/s of both and how far the fast run's loss strays from the given run's over the same steps from
the same seed (at the first step, where only the kernels differ, and the largest over every step);
``--fast-set KEY=VALUE ...`` adds a third run, ``fast_set``: the fast settings and these (such as
``train.compile_loss=true``), tabulated with its own speed-up and loss change. ``--small``
trains each method's tiny network (its ``small`` config) on two 64 x 64 crops of 96 x 128 scenes: a check that the
script runs, not a speed figure.

On CUDA a few further steps per phase run under ``torch.cuda.set_sync_debug_mode("warn")`` and count the operations
that made the host wait for the GPU (``syncs/step``), each with the line of code that asked for it (printed and in
the JSON's ``sync_sources``; ``sync_stacks`` keeps the innermost frames of each line's first wait, torch's
included). With ``reduce-overhead``, the reasons inductor gives for not replaying a compiled graph from CUDA graphs
(a tensor on the CPU in the graph, say) are printed under the phase and kept in ``cuda_graph_skips``.
``--profile DIR`` profiles ``--profile-steps`` more steps per phase with ``torch.profiler`` and writes, per method,
phase and setting, ``DIR/<method>-<phase>-<setting>.md``: the split of a step's wall time into waiting for data,
forward and loss, backward, optimiser and EMA (from the ``taskfuse.*`` ranges of ``taskfuse.train.ranges``, each
range waiting for the GPU at both ends while profiling), the all-reduce time (NCCL kernels on CUDA, gloo calls on
the CPU; it overlaps the backward pass), the share of the step the GPU was busy, and the top kernels by CUDA time
(operators by CPU time on a CPU); the summary goes to the Markdown report.

Under torchrun every process trains on its own GPU and images/s counts the images of all processes over the
slowest process's time. Results: ``OUT/train_speed.json`` and ``OUT/train_speed.md`` (also printed).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sysconfig
import tempfile
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from taskfuse import models
from taskfuse.benchmark.training import benchmark_methods
from taskfuse.device import available_cpus, reuse_freed_memory
from taskfuse.metrics.table import markdown_table
from taskfuse.train import distributed
from taskfuse.train.config import RunConfig
from taskfuse.train.loop import Trainer
from taskfuse.train.ranges import synchronised
from taskfuse.train.resolve import load_config, shipped_configs
from taskfuse.train.strategies import STRATEGIES

FAST = ["train.channels_last=true", "train.compile=true", "train.cudnn_benchmark=true", "data.workers=auto"]
"""What ``--compare`` adds for its fast run."""
RANGES = ("data", "backward", "optimiser", "ema")
"""The ``taskfuse.*`` ranges inside ``taskfuse.step``; the rest of a step is the forward pass and the loss."""


def speed_methods() -> list[str]:
    """Learned methods with a shipped config to train from: their synthetic-scenes recipe, else their own."""
    return [n for n in models.names(learned=True) if models.get(n).config in shipped_configs()]


def method_config(method: str, overrides: list[str], small: bool) -> RunConfig:
    """``method``'s config on synthetic scenes, with ``overrides`` last; ``small``: tiny networks and crops."""
    spec = models.get(method)
    name = f"{spec.config}_synthetic"
    base = ["data.val=null", "log.best=", "log.progress=false", "log.tensorboard=false", "data.cache=false"]
    if name not in shipped_configs():
        name = spec.config
        base += ["data.train=null", "data.train.name=synthetic", "train.dataset=synthetic"]
        base += ["data.train.height=480", "data.train.width=640"]
    if small:
        base += [f"model.{k}={json.dumps(v)}" for k, v in spec.small.items()]
    return load_config(name, [*base, *overrides], quick=small)


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


RENDERED: dict[str, list[dict[str, Any]]] = {}
"""Rendered samples by dataset config, shared by the methods and settings of one invocation."""


def render_once(trainer: Trainer, cfg: RunConfig, workers: int) -> None:
    """Give every stream of ``trainer`` its dataset's samples rendered up front (in ``workers`` processes)."""
    for phase, (spec, _) in STRATEGIES.get(cfg.strategy).phases(cfg).items():
        stream = trainer.streams[phase]
        key = repr(spec)
        if key not in RENDERED:
            loader = DataLoader(stream.data.dataset, batch_size=None, num_workers=workers)
            RENDERED[key] = list(loader)
        stream.data.dataset = RENDERED[key]
        stream.close()


STACK = 8
"""Frames kept of each line's first wait (``sync_stacks``)."""

SYNC_WARNING = "called a synchronizing CUDA operation"
"""The warning torch's sync debug mode gives for each wait (``c10::cuda::warn_or_error_on_sync``). Setting the mode
also warns, once per process, that the mode is a prototype that misses some "synchronizing operations": that
notice is not a wait."""


GRAPH_SKIPS = "torch._inductor.cudagraph_utils.__cudagraphs"
"""The logger on which inductor says why a compiled graph will not be replayed from a CUDA graph ("skipping
cudagraphs due to ...": torch's ``cudagraphs`` log artifact, off by default, so never printed unless asked)."""


class _Messages(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextmanager
def graph_skips() -> Iterator[list[str]]:
    """The reasons inductor gives, inside the block, for not replaying a compiled graph from a CUDA graph."""
    handler, logger = _Messages(), logging.getLogger(GRAPH_SKIPS)
    logger.addHandler(handler)
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def syncs_per_step(
    run: Callable[[int], None], steps: int, device: torch.device
) -> tuple[float | None, dict[str, int], dict[str, list[str]]]:
    """Operations per step that made the host wait for the GPU (CUDA's sync debug mode), where they were called
    from (the innermost frame outside torch and the standard library, ``file:line function``, with its count over
    the ``steps``), and for each such line the innermost frames of its first wait, torch's included (``STACK``,
    innermost first); (None, {}, {}) off CUDA."""
    if device.type != "cuda" or steps == 0:
        return None, {}, {}
    sources: Counter[str] = Counter()
    stacks: dict[str, list[str]] = {}

    def record(message: Any, *_: Any, **__: Any) -> None:
        if SYNC_WARNING in str(message):
            stack = traceback.extract_stack()[:-1]
            source = sync_source(stack)
            sources[source] += 1
            stacks.setdefault(source, [f"{f.filename}:{f.lineno} {f.name}" for f in reversed(stack[-STACK:])])

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = record
        torch.cuda.set_sync_debug_mode("warn")
        try:
            run(steps)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    sync(device)
    return sum(sources.values()) / steps, dict(sources.most_common()), stacks


def sync_source(stack: traceback.StackSummary) -> str:
    """The innermost frame of ``stack`` in this project's or a user's code (not torch's, not Python's own; the
    installed packages lie inside Python's own directory, so only the standard library proper is left out)."""
    paths = sysconfig.get_paths()

    def library(file: str) -> bool:
        own = file.startswith(paths["stdlib"]) and not file.startswith((paths["purelib"], paths["platlib"]))
        return own or file.startswith(str(Path(torch.__file__).parent))

    frame = next((f for f in reversed(stack) if not library(f.filename)), stack[-1])
    return f"{Path(frame.filename).name}:{frame.lineno} {frame.name}"


def step_split(events: list[Any], steps: int, cuda: bool) -> tuple[dict[str, Any], list[Any]]:
    """The split of a step's wall time (ms per step) from a profile's averaged ``events``, and its CUDA kernels.

    The ``taskfuse.*`` ranges count by their CPU events alone: on CUDA the profiler also lists each range as a
    GPU annotation spanning its kernels, under the same name, with no CPU time, which would otherwise stand for
    the range (every part 0 ms) and count the kernels a second time in the GPU's busy time."""
    from torch.autograd import DeviceType

    ranges = {e.key: e for e in events if e.key.startswith("taskfuse.") and e.device_type == DeviceType.CPU}
    split = {
        name: ranges[f"taskfuse.{name}"].cpu_time_total / 1e3 / steps if f"taskfuse.{name}" in ranges else 0.0
        for name in ("step", *RANGES)
    }
    split["forward_loss"] = split["step"] - sum(split[name] for name in RANGES)
    kernels = [e for e in events if e.device_type == DeviceType.CUDA and not e.key.startswith("taskfuse.")]
    if cuda:
        busy = sum(e.self_device_time_total for e in kernels) / 1e3 / steps
        split["allreduce"] = sum(e.self_device_time_total for e in kernels if "nccl" in e.key.lower()) / 1e3 / steps
        split["gpu_busy"] = busy / split["step"] if split["step"] else None
    else:
        split["allreduce"] = sum(e.cpu_time_total for e in events if e.key.startswith("gloo:")) / 1e3 / steps
        split["gpu_busy"] = None
    return split, kernels


def profile_steps(run: Callable[[int], None], steps: int, device: torch.device) -> tuple[dict[str, Any], str]:
    """Profile ``steps`` steps: the split of a step's wall time (ms per step) and a Markdown table of the top
    kernels (CUDA) or operators (CPU)."""
    from torch.profiler import ProfilerActivity, profile

    cuda = device.type == "cuda"
    activities = [ProfilerActivity.CPU, *([ProfilerActivity.CUDA] if cuda else [])]
    with synchronised(device), profile(activities=activities) as prof:
        run(steps)
        sync(device)
    events = prof.key_averages()
    split, kernels = step_split(list(events), steps, cuda)
    if cuda:
        top = sorted(kernels, key=lambda e: e.self_device_time_total, reverse=True)[:25]
        total = sum(e.self_device_time_total for e in kernels) or 1.0
        rows = [
            [
                e.key[:90],
                str(e.count),
                f"{e.self_device_time_total / 1e3:.2f}",
                f"{100 * e.self_device_time_total / total:.1f}",
            ]
            for e in top
        ]
        table = markdown_table(["kernel", "calls", "CUDA ms", "% of GPU time"], rows)
    else:
        ops = [e for e in events if not e.key.startswith(("taskfuse.", "gloo:"))]
        top = sorted(ops, key=lambda e: e.self_cpu_time_total, reverse=True)[:25]
        rows = [[e.key[:90], str(e.count), f"{e.self_cpu_time_total / 1e3:.2f}"] for e in top]
        table = markdown_table(["operator", "calls", "self CPU ms"], rows)
    return split, table


def split_table(split: dict[str, Any]) -> str:
    rows = [[name, f"{split[key]:.2f}"] for name, key in SPLIT_COLUMNS if split.get(key) is not None]
    if split.get("gpu_busy") is not None:
        rows.append(["GPU busy", f"{100 * split['gpu_busy']:.0f} %"])
    return markdown_table(["part of a step", "ms per step"], rows)


SPLIT_COLUMNS = (
    ("step (wall)", "step"),
    ("waiting for data", "data"),
    ("forward + loss", "forward_loss"),
    ("backward (with DDP's all-reduce)", "backward"),
    ("optimiser", "optimiser"),
    ("EMA", "ema"),
    ("all-reduce (overlaps backward)", "allreduce"),
)


def bench_method(
    method: str, setting: str, overrides: list[str], args: argparse.Namespace, info: distributed.DistInfo
) -> dict[str, dict[str, Any]]:
    cfg = method_config(method, overrides, args.small)
    batch = max(settings.batch_size for _, settings in STRATEGIES.get(cfg.strategy).phases(cfg).values())
    scenes = max(args.scenes, batch * info.world)
    length = [] if args.small else [f"data.train.length={scenes}"]
    cfg = method_config(method, [*overrides, *length], args.small)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(cfg, Path(tmp), info)
    render_once(trainer, cfg, args.render_workers)
    blocks = phase_blocks(trainer)
    if args.phases and not set(args.phases) & set(blocks):
        raise ValueError(f"--phases {' '.join(args.phases)}: {method}'s phases are {', '.join(blocks)}")
    results = {}
    for phase, block in blocks.items():
        if args.phases and phase not in args.phases:
            continue
        batch = trainer.streams[phase].phase.batch_size
        position = iter(range(10**9))
        losses: list[torch.Tensor] = []

        def run(steps: int, block: range = block, position: Any = position, losses: list = losses) -> None:
            for _ in range(steps):
                values = trainer.run_step(block[next(position) % len(block)])
                losses.append(next(v for k, v in values.items() if k.endswith("total")))

        if info.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(info.device)
        with graph_skips() as skips:
            run(args.warmup)
            sync(info.device)
            start = time.perf_counter()
            run(args.steps)
            sync(info.device)
        seconds = max(distributed.gather(time.perf_counter() - start, info))
        memory = torch.cuda.max_memory_allocated(info.device) / 2**30 if info.device.type == "cuda" else None
        syncs, sources, stacks = syncs_per_step(run, args.sync_steps, info.device)
        result: dict[str, Any] = {
            "steps_per_s": args.steps / seconds,
            "images_per_s": args.steps * batch * info.world / seconds,
            "batch_size": batch,
            "crop": trainer.streams[phase].phase.crop,
            "seconds": seconds,
            "peak_memory_gib": max(distributed.gather(memory, info)) if memory is not None else None,
            "syncs_per_step": syncs,
            "sync_sources": sources,
            "sync_stacks": stacks,
            "cuda_graph_skips": skips,
            "losses": [float(v) for v in losses[: args.warmup + args.steps]],
        }
        if args.profile is not None and args.profile_steps > 0:
            split, table = profile_steps(run, args.profile_steps, info.device)
            result["profile"] = split
            if info.main:
                args.profile.mkdir(parents=True, exist_ok=True)
                title = f"# {method}, {phase}, {setting} ({info.device}, {info.world} process(es))\n\n"
                text = title + split_table(split) + "\n" + table
                (args.profile / f"{method}-{phase}-{setting}.md").write_text(text)
        results[phase] = result
        if info.main:
            syncs = result["syncs_per_step"]
            print(
                f"{method:10s} {setting:6s} {phase:13s} batch {batch:3d}  {result['steps_per_s']:8.2f} steps/s  "
                f"{result['images_per_s']:9.1f} images/s" + (f"  {syncs:.1f} syncs/step" if syncs is not None else ""),
                flush=True,
            )
            for source, count in result["sync_sources"].items():
                print(f"    {count / args.sync_steps:.1f} syncs/step from {source}", flush=True)
            for skip in skips:
                print(f"    {skip}", flush=True)
    for stream in trainer.streams.values():
        stream.close()
    return results


def loss_change(given: list[float], fast: list[float], name: str = "fast") -> str:
    """How far the fast setting's loss strays from the given one's over the same steps from the same seed, in
    percent of the given loss: at the first step (the same weights, so only the kernels differ) and the largest
    over every step (the two runs' weights drift apart as the differences accumulate); or, where a loss is not
    finite, the first such step (from 1) and whose it is (``name``: the fast setting's), since a diverged run has no
    largest change."""
    pairs = list(zip(given, fast, strict=True))
    change = [abs(b - a) / max(abs(a), 1e-12) * 100 for a, b in pairs]
    first = f"{change[0]:.2g} %"
    for step, (a, b) in enumerate(pairs, 1):
        if not math.isfinite(a) or not math.isfinite(b):
            return f"{first} / {'given' if not math.isfinite(a) else name} loss not finite from step {step}"
    return f"{first} / {max(change):.2g} %"


def report_tables(report: dict[str, Any]) -> str:
    """The Markdown report: images/s per method and phase (every setting with ``--compare``, each later one's
    speed-up and loss change against the first), and the profile."""
    settings = report["settings"]
    speed_header = [f"{s} images/s" for s in settings]
    for s in settings[1:]:
        speed_header += [f"{s} speed-up", f"{s} loss change: first step / largest"]
    header = ["method", "phase", "batch", "crop", *speed_header, f"syncs/step ({settings[0]})", "peak GiB"]
    rows, profile = [], []
    for method, by_setting in report["methods"].items():
        if "error" in by_setting:
            rows.append([method, "failed: " + by_setting["error"][:80], *[""] * (len(header) - 2)])
            continue
        first = by_setting[settings[0]]
        for phase, r in first.items():
            speeds = [by_setting[s][phase]["images_per_s"] for s in settings]
            cells = [f"{v:.1f}" for v in speeds]
            for s, speed in zip(settings[1:], speeds[1:], strict=True):
                change = loss_change(r["losses"], by_setting[s][phase]["losses"], s)
                cells += [f"{speed / speeds[0]:.2f}x", change]
            syncs = r["syncs_per_step"]
            memory = r["peak_memory_gib"]
            rows.append(
                [
                    method,
                    phase,
                    str(r["batch_size"]),
                    str(r["crop"]),
                    *cells,
                    "" if syncs is None else f"{syncs:.1f}",
                    "" if memory is None else f"{memory:.1f}",
                ]
            )
            for s in settings:
                split = by_setting[s][phase].get("profile")
                if split is not None:
                    parts = [f"{split[key]:.1f}" for _, key in SPLIT_COLUMNS]
                    busy = "" if split["gpu_busy"] is None else f"{100 * split['gpu_busy']:.0f} %"
                    profile.append([method, phase, s, *parts, busy])
    where = f"{report['device']}, {report['processes']} process(es), torch {report['torch']}"
    text = f"Training speed on {where}; {report['steps']} timed steps per phase after {report['warmup']} warm-up.\n\n"
    text += markdown_table(header, rows)
    if profile:
        head = ["method", "phase", "setting", *(f"{name} ms" for name, _ in SPLIT_COLUMNS), "GPU busy"]
        text += "\nWhere a step's time goes (profiled steps, each part waiting for the GPU at its end):\n\n"
        text += markdown_table(head, profile)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (torchrun: each process its GPU)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per phase")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps per phase before timing")
    parser.add_argument("--methods", nargs="+", default=benchmark_methods(), choices=speed_methods())
    parser.add_argument("--phases", nargs="+", default=None, help="time only these phases (default: every phase)")
    parser.add_argument("--scenes", type=int, default=64, help="synthetic scenes rendered (once, before timing)")
    parser.add_argument("--workers", default="0", help="DataLoader workers per process: a number or auto")
    parser.add_argument("--channels-last", action="store_true", help="train.channels_last=true")
    parser.add_argument("--compile", action="store_true", help="train.compile=true")
    parser.add_argument("--compile-mode", default=None, help="train.compile_mode (default, reduce-overhead, ...)")
    parser.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None, help="train.amp")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides for every method")
    parser.add_argument(
        "--compare", action="store_true", help="also run with channels_last, compile, cudnn_benchmark, workers"
    )
    parser.add_argument(
        "--fast-compile-mode", default=None, help="train.compile_mode of --compare's fast run (e.g. reduce-overhead)"
    )
    parser.add_argument(
        "--fast-set", nargs="*", default=[], metavar="KEY=VALUE", help="with --compare, a third run: fast and these"
    )
    parser.add_argument("--small", action="store_true", help="tiny networks and crops: a smoke test of the script")
    parser.add_argument("--sync-steps", type=int, default=3, help="steps per phase counting host syncs (CUDA)")
    parser.add_argument("--profile", type=Path, default=None, metavar="DIR", help="write profiler tables here")
    parser.add_argument("--profile-steps", type=int, default=5, help="profiled steps per phase")
    parser.add_argument(
        "--render-workers", type=int, default=min(8, available_cpus()), help="processes rendering scenes"
    )
    parser.add_argument("--out", type=Path, default=Path("train_speed"), help="folder for the JSON and Markdown")
    args = parser.parse_args()

    given = [f"data.workers={args.workers}", *args.set]
    given += ["train.channels_last=true"] if args.channels_last else []
    given += ["train.compile=true"] if args.compile else []
    given += [f"train.compile_mode={args.compile_mode}"] if args.compile_mode else []
    given += [f"train.amp={str(args.amp).lower()}"] if args.amp is not None else []
    fast = [*given, *FAST, *([f"train.compile_mode={args.fast_compile_mode}"] if args.fast_compile_mode else [])]
    settings = {"given": given, **({"fast": fast} if args.compare else {})}
    settings.update({"fast_set": [*fast, *args.fast_set]} if args.compare and args.fast_set else {})

    info = distributed.setup(args.device)
    report: dict[str, Any] = {
        "freed_memory_reused": reuse_freed_memory(),
        "device": torch.cuda.get_device_name(info.device) if info.device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "processes": info.world,
        "steps": args.steps,
        "warmup": args.warmup,
        "small": args.small,
        "settings": list(settings),
        "overrides": settings,
        "methods": {},
    }
    try:
        for method in args.methods:
            results: dict[str, Any] = {}
            try:
                for setting, overrides in settings.items():
                    results[setting] = bench_method(method, setting, overrides, args, info)
                    if info.device.type == "cuda":
                        torch.cuda.empty_cache()
            except Exception as e:  # one method failing leaves the others to measure
                results = {"error": str(e)}
                if info.main:
                    print(f"{method}: failed: {e}", flush=True)
            report["methods"][method] = results
    finally:
        distributed.teardown(info)
    if info.main:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "train_speed.json").write_text(json.dumps(report, indent=2))
        text = report_tables(report)
        (args.out / "train_speed.md").write_text(text)
        print("\n" + text + f"\nwrote {args.out / 'train_speed.json'} and {args.out / 'train_speed.md'}")


if __name__ == "__main__":
    main()

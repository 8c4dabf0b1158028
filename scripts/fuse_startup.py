"""Where a fresh ``taskfuse fuse`` spends its time: the start-up steps of the command, one after the other, in a
new process each run, and the run itself against a second run of the same pairs in that process.

    python scripts/fuse_startup.py --ir PAIRS/ir --vi PAIRS/vi --device cuda --runs 2 --out fuse_startup.json

Each run starts ``python`` afresh and times, from the moment the parent starts it: the interpreter, ``import
torch``, importing the ``taskfuse fuse`` command (``taskfuse.cli.fuse``), choosing the device (``resolve_device``),
the first CUDA allocation (the context: on the CPU nothing), loading the default model (``load``), pairing the
folders (``find_pairs``), planning (``plan_fuse``: header checks and the manifest), ``FuseJob.start`` and
``FuseJob.run`` into a new folder; then the same pairs again into another new folder in the same process
(``second_run``), whose first calls (cuDNN's choices, CUDA's modules, graph capture) are behind it. The first
run's excess over the second is what a fresh process pays once running. ``--first-calls`` adds a process that
times, after loading the model, one batch of ``--batch`` (default 16) random 480 x 640 pairs through
``FusionModel.fuse_batch`` (the network's share of a run's batch, without the rounding and PNG work), three times
eagerly and then captured into a CUDA graph and replayed (on a GPU).

Results go to ``--out`` as JSON, printed as a table of seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

STARTED = "FUSE_STARTUP_T0"
"""The environment variable giving the child process the wall clock time at which its parent started it."""


def child(args: argparse.Namespace) -> dict[str, Any]:
    """The steps of one fresh command, each as (name, seconds since the parent started the process)."""
    t0 = float(os.environ[STARTED])
    marks: list[tuple[str, float]] = [("interpreter", time.time() - t0)]

    def mark(name: str) -> None:
        marks.append((name, time.time() - t0))

    import torch

    mark("import torch")
    import taskfuse.cli.fuse  # noqa: F401
    from taskfuse.device import resolve_device, reuse_freed_memory
    from taskfuse.inference import load

    reuse_freed_memory()
    mark("import taskfuse fuse")
    device = resolve_device(args.device)
    mark("resolve_device")
    torch.empty(1, device=device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    mark("first allocation")
    model = load(device=str(device))
    mark("load model")
    if args.first_calls:
        return {"marks": marks, "first_calls": first_calls(model, device, args.batch or 16)}
    work = Path(tempfile.mkdtemp(prefix="fuse-startup-"))
    try:
        return {"marks": marks, **runs(args, model, device, work, mark)}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def runs(args: argparse.Namespace, model: Any, device: Any, work: Path, mark: Any) -> dict[str, Any]:
    """The steps from pairing to the first run (each ``mark``ed), then the second run of the same pairs."""
    from taskfuse.data.pairs import find_pairs
    from taskfuse.inference import plan_fuse

    pairs = find_pairs(args.ir, args.vi)
    mark("find_pairs")
    pipeline = {"device": device, "batch": args.batch, "workers": args.workers, "processes": args.processes}
    job = plan_fuse(model, pairs, work / "first", **pipeline)
    mark("plan_fuse")
    job.start()
    mark("start")
    first = job.run(progress=False)
    mark("run")
    second_job = plan_fuse(model, pairs, work / "second", **pipeline)
    second_job.start()
    second = second_job.run(progress=False)
    timed = {
        name: {"seconds": s.seconds, "pairs_per_s": s.written / s.seconds, "main": s.main, "workers": j.workers}
        for name, s, j in (("first_run", first, job), ("second_run", second, second_job))
    }
    return {"pairs": len(pairs), "runs": timed}


def first_calls(model: Any, device: Any, batch: int) -> dict[str, float]:
    """Seconds of a batch through ``FusionModel.fuse_batch`` on random 8-bit pairs: three eager calls, then on a GPU
    the capture of a CUDA graph and one replay (``GraphReplay``), each waited for."""
    import torch

    from taskfuse.device import GraphReplay

    ir = torch.randint(0, 256, (batch, 1, 480, 640), dtype=torch.uint8, device=device)
    vi = torch.randint(0, 256, (batch, 3, 480, 640), dtype=torch.uint8, device=device)
    times = {}

    def timed(name: str, fn: Any) -> None:
        start = time.perf_counter()
        fn(ir, vi)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times[name] = time.perf_counter() - start

    for i in range(3):
        timed(f"eager {i + 1}", model.fuse_batch)
    if device.type == "cuda":
        replay = GraphReplay(model.fuse_batch)
        replay.seen.add(tuple((tuple(t.shape), t.dtype, t.device) for t in (ir, vi)))
        timed("capture", replay)
        timed("replay", replay)
    return times


def table(runs: list[dict[str, Any]]) -> str:
    """Markdown: each step's own seconds per run, then the runs' pairs/s and seconds."""
    lines = ["| step | " + " | ".join(f"run {i + 1}" for i in range(len(runs))) + " |"]
    lines.append("| :-- |" + " --: |" * len(runs))
    names = [name for name, _ in runs[0]["marks"]]
    for k, name in enumerate(names):
        own = [r["marks"][k][1] - (r["marks"][k - 1][1] if k else 0.0) for r in runs]
        lines.append(f"| {name} | " + " | ".join(f"{s:.2f}" for s in own) + " |")
    for key in ("first_run", "second_run"):
        if "runs" in runs[0]:
            cells = [f"{r['runs'][key]['pairs_per_s']:.1f} pairs/s ({r['runs'][key]['seconds']:.2f} s)" for r in runs]
            lines.append(f"| {key} | " + " | ".join(cells) + " |")
    for name in runs[0].get("first_calls", {}):
        lines.append(f"| first calls: {name} | " + " | ".join(f"{r['first_calls'][name]:.3f}" for r in runs) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ir", type=Path, help="the infrared folder")
    parser.add_argument("--vi", type=Path, help="the visible folder")
    parser.add_argument("--device", default="cuda", help="cuda (default), cpu or auto")
    parser.add_argument("--batch", type=int, default=None, help="pairs per batch (default: taskfuse fuse's)")
    parser.add_argument("--workers", type=int, default=None, help="workers of each kind (default: taskfuse fuse's)")
    parser.add_argument(
        "--processes",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="worker processes or threads (default: taskfuse fuse's choice)",
    )
    parser.add_argument("--runs", type=int, default=2, help="fresh processes (default 2)")
    parser.add_argument("--first-calls", action="store_true", help="also time a batch's first calls")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=Path("fuse_startup.json"))
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return
    if args.ir is None or args.vi is None:
        parser.error("--ir and --vi are required")
    argv = [sys.executable, __file__, "--child", "--ir", str(args.ir), "--vi", str(args.vi), "--device", args.device]
    argv += [] if args.batch is None else ["--batch", str(args.batch)]
    argv += [] if args.workers is None else ["--workers", str(args.workers)]
    argv += [] if args.processes is None else ["--processes" if args.processes else "--no-processes"]
    todo = [argv] * args.runs + ([[*argv, "--first-calls"]] if args.first_calls else [])
    runs = []
    for command in todo:
        env = {**os.environ, STARTED: repr(time.time())}
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if done.returncode:
            sys.exit(f"fuse_startup: a run failed:\n{done.stderr[-3000:]}")
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    result = {"device": args.device, "runs": [r for r in runs if "runs" in r], "first_calls": runs[args.runs :]}
    args.out.write_text(json.dumps(result, indent=1))
    print(table(result["runs"]))
    if result["first_calls"]:
        print(table(result["first_calls"]))


if __name__ == "__main__":
    main()

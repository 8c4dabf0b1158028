"""Pairs/s of ``taskfuse fuse``'s pipeline for each split of its workers: decoding workers (``--workers``) against
encoding threads (``FuseJob.encoders``), in one process after warming up, the settings taking turns round after
round so that a host's drift falls on all of them alike.

    python scripts/fuse_workers.py --folder PNG_PAIRS --copies 8 --device cuda --settings 8,8 8,2 12,2 \\
        --rounds 3 --out fuse_workers.json

``--copies`` hard-links every pair of ``--folder`` (``ir/`` and ``vi/``) that many times under new names into a
temporary folder (MSRS's 301 test pairs make 2408), so that a run is long enough to time and reads distinct
files. Decoding runs in worker processes where ``taskfuse fuse`` would choose them for that many pairs
(``--processes`` / ``--no-processes`` to choose). Each run writes a new folder, removed after it; ``--seconds``
stops starting new runs after that long, keeping what was measured.

Results go to ``--out`` (JSON) and beside it as Markdown: each setting's pairs/s by round, and where the calling
thread's time went in each run (``FuseSummary.main`` and ``main_cpu``, ms per pair: wall / that thread's CPU, for
waiting on decoding, fusing, waiting on encoding, and the whole run), which tells working from waiting apart, with
the GPU's span on the batches (``FuseSummary.gpu``), which tells whether the GPU bounds a run of replayed batches.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from taskfuse.data.pairs import Pair, find_pairs
from taskfuse.device import EagerReplayWarning, resolve_device
from taskfuse.inference import FuseSummary, default_processes, load, plan_fuse
from taskfuse.metrics.table import markdown_table

WARM_PAIRS = 64
"""Pairs fused before the timed runs: cuDNN's choices, CUDA's modules and graph capture behind them."""


def setting(text: str) -> tuple[int, int]:
    """``D,E`` as (decoding workers, encoding threads), both at least 1."""
    try:
        decoders, encoders = (int(n) for n in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected DECODERS,ENCODERS such as 8,2, got {text!r}") from None
    if decoders < 1 or encoders < 1:
        raise argparse.ArgumentTypeError(f"both counts must be at least 1, got {text!r}")
    return decoders, encoders


def linked_copies(folder: Path, copies: int, into: Path) -> Path:
    """Every pair of ``folder`` hard-linked ``copies`` times into ``into`` as ``c{i}_{name}`` (copied where
    ``into`` lies on another file system)."""
    for pair in find_pairs(folder / "ir", folder / "vi"):
        for side, path in (("ir", pair.ir), ("vi", pair.vi)):
            (into / side).mkdir(parents=True, exist_ok=True)
            for i in range(copies):
                try:
                    (into / side / f"c{i}_{path.name}").hardlink_to(path)
                except OSError:
                    shutil.copy(path, into / side / f"c{i}_{path.name}")
    return into


def timed_run(
    model: Any, pairs: list[Pair], out: Path, device: torch.device, split: tuple[int, int], processes: bool
) -> FuseSummary:
    """One run into the new folder ``out`` (removed after) with ``split``'s decoders and encoders."""
    decoders, encoders = split
    job = plan_fuse(model, pairs, out, device=device, workers=decoders, processes=processes)
    job = replace(job, encoders=encoders)
    job.start()
    summary = job.run(progress=False)
    shutil.rmtree(out)
    return summary


def stages(summary: FuseSummary) -> dict[str, list[float]]:
    """The calling thread's [wall, CPU] ms per pair in each stage of a run and in the whole run (``run``), and the
    GPU's ms per pair on the batches (``gpu``, one value; absent off CUDA)."""
    walls = {**summary.main, "run": summary.seconds}
    found = {
        stage: [round(1e3 * walls[stage] / summary.written, 3), round(1e3 * cpu / summary.written, 3)]
        for stage, cpu in summary.main_cpu.items()
        if walls[stage] > 0
    }
    if summary.gpu is not None:
        found["gpu"] = [round(1e3 * summary.gpu / summary.written, 3)]
    return found


def main() -> None:
    warnings.simplefilter("error", EagerReplayWarning)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folder", type=Path, required=True, help="folder with ir/ and vi/ pairs")
    parser.add_argument("--copies", type=int, default=1, help="hard-linked copies of each pair (default 1)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    parser.add_argument(
        "--settings", type=setting, nargs="+", default=[(8, 8), (8, 2)], help="DECODERS,ENCODERS (default: 8,8 8,2)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every setting (default 3)")
    parser.add_argument(
        "--processes", action=argparse.BooleanOptionalAction, help="decode in worker processes (default: fuse's)"
    )
    parser.add_argument("--seconds", type=float, default=float("inf"), help="start no run after this long")
    parser.add_argument("--out", type=Path, default=Path("fuse_workers.json"))
    args = parser.parse_args()
    if args.copies < 1 or args.rounds < 1:
        parser.error("--copies and --rounds must be at least 1")
    start = time.perf_counter()
    device = resolve_device(args.device)
    model = load(device=str(device))
    with tempfile.TemporaryDirectory(prefix="fuse-workers-") as tmp:
        work = Path(tmp)
        data = linked_copies(args.folder, args.copies, work / "pairs")
        pairs = find_pairs(data / "ir", data / "vi")
        processes = default_processes(device, len(pairs)) if args.processes is None else args.processes
        timed_run(model, pairs[:WARM_PAIRS], work / "warm", device, args.settings[0], processes)
        rates: dict[str, list[float]] = {f"{d},{e}": [] for d, e in args.settings}
        times: dict[str, list[dict[str, list[float]]]] = {name: [] for name in rates}
        for _ in range(args.rounds):
            for name, split in zip(rates, args.settings, strict=True):
                if time.perf_counter() - start > args.seconds:
                    break
                summary = timed_run(model, pairs, work / "run", device, split, processes)
                rates[name].append(summary.written / summary.seconds)
                times[name].append(stages(summary))
    report = {"device": str(device), "torch": torch.__version__, "pairs": len(pairs), "processes": processes}
    report["pairs_per_s"] = rates
    report["ms_per_pair"] = times
    header = ["decoding workers, encoding threads", *(f"round {i + 1}" for i in range(args.rounds))]
    rows = [[name, *(f"{r:.1f}" for r in found)] + [""] * (args.rounds - len(found)) for name, found in rates.items()]
    table = markdown_table(header, rows)
    names = ("decode", "fuse", "encode", "run")
    header = ["decoding workers, encoding threads; round", *(f"{n}: wall / CPU ms per pair" for n in names)]
    header.append("GPU ms per pair")
    rows = [
        [
            f"{name}; {i + 1}",
            *(" / ".join(f"{v:.2f}" for v in found.get(n, [0.0, 0.0])) for n in names),
            f"{found['gpu'][0]:.2f}" if "gpu" in found else "",
        ]
        for name, runs in times.items()
        for i, found in enumerate(runs)
    ]
    table += "\n" + markdown_table(header, rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    args.out.with_suffix(".md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()

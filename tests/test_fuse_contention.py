"""``scripts/fuse_contention.py`` runs on the CPU: the calling thread's batch time under busy pools, pairs/s of
processes fusing together, and what handing pairs to workers costs the calling process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from script_runs import random_pairs, run_script


@pytest.mark.slow
def test_fuse_contention_times_the_calling_thread_and_processes(tmp_path: Path) -> None:
    pairs = random_pairs(tmp_path / "pairs", 4, 32, 48)
    out = tmp_path / "contention.json"
    args = ["--folder", str(pairs), "--device", "cpu", "--batch", "2", "--batches", "1", "--layouts", "1x1", "2x1"]
    args += ["--copies", "2", "--parts", "calling", "processes", "handoff", "--workers", "2", "--rounds", "1"]
    run_script("fuse_contention.py", [*args, "--out", str(out)], tmp_path)
    report = json.loads(out.read_text())
    calling = report["calling_ms_per_batch"]
    assert list(calling) == [f"{busy} / eager" for busy in ("none", "decode 8", "encode 8", "both 8", "both 16")]
    assert all(wall > 0 and cpu > 0 for wall, cpu in calling.values())
    assert list(report["processes_pairs_per_s"]) == ["1x1", "2x1"] and min(report["processes_pairs_per_s"].values()) > 0
    handoff = report["handoff"]
    assert list(handoff) == ["threads", "process pool", "worker_processes"]
    for (row,) in handoff.values():
        assert list(row) == ["decode pairs/s", "decode CPU ms/pair", "write pairs/s", "write CPU ms/pair"]
        assert min(row.values()) > 0

"""``scripts/fuse_contention.py`` runs on the CPU: the calling thread's batch time under busy pools, pairs/s of
processes fusing together, and what handing pairs to workers costs the calling process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from taskfuse.data.io import write_image

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_fuse_contention_times_the_calling_thread_and_processes(tmp_path: Path) -> None:
    gen = torch.Generator().manual_seed(0)
    for i in range(4):
        write_image(tmp_path / "pairs" / "ir" / f"{i}.png", torch.rand(1, 32, 48, generator=gen))
        write_image(tmp_path / "pairs" / "vi" / f"{i}.png", torch.rand(3, 32, 48, generator=gen))
    out = tmp_path / "contention.json"
    command = [sys.executable, str(ROOT / "scripts" / "fuse_contention.py"), "--folder", str(tmp_path / "pairs")]
    command += ["--device", "cpu", "--batch", "2", "--batches", "1", "--layouts", "1x1", "2x1", "--copies", "2"]
    command += ["--parts", "calling", "processes", "handoff", "--workers", "2", "--rounds", "1"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([*command, "--out", str(out)], check=True, env=env, cwd=tmp_path, capture_output=True, text=True)
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

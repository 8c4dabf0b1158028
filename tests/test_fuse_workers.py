"""``scripts/fuse_workers.py`` runs on the CPU: every split of decoders and encoders timed in every round."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from script_runs import random_pairs, run_script


@pytest.mark.slow
def test_fuse_workers_times_every_split_in_every_round(tmp_path: Path) -> None:
    pairs = random_pairs(tmp_path / "pairs", 3, 48, 64)
    out = tmp_path / "workers.json"
    args = ["--folder", str(pairs), "--copies", "2", "--device", "cpu", "--settings", "1,1", "2,1", "--rounds", "2"]
    run_script("fuse_workers.py", [*args, "--out", str(out)], tmp_path)
    report = json.loads(out.read_text())
    assert report["pairs"] == 6 and report["processes"] is False
    assert list(report["pairs_per_s"]) == ["1,1", "2,1"]
    assert all(len(rates) == 2 and min(rates) > 0 for rates in report["pairs_per_s"].values())
    for runs in report["ms_per_pair"].values():
        assert len(runs) == 2 and all(run["run"][0] > 0 and run["run"][1] > 0 and "fuse" in run for run in runs)
        assert not any("gpu" in run for run in runs), "no GPU time on the CPU"
    assert sorted(p.name for p in (pairs / "ir").iterdir()) == ["0.png", "1.png", "2.png"], "inputs untouched"
    refused = run_script("fuse_workers.py", [*args[:7], "2,0", "--out", str(out)], tmp_path, check=False)
    assert refused.returncode != 0 and "both counts must be at least 1" in refused.stderr

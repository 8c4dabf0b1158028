"""``scripts/fuse_speed.py --parts folder`` runs on the CPU: ``taskfuse fuse`` end to end, settings left out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from script_runs import random_pairs, run_script


@pytest.mark.slow
def test_fuse_speed_times_the_folder_part_without_the_settings_skipped(tmp_path: Path) -> None:
    pairs = random_pairs(tmp_path / "pairs", 4, 48, 64)
    out = tmp_path / "speed.json"
    args = ["--parts", "folder", "--device", "cpu", "--folder", str(pairs), "--pairs", "4", "--runs", "1"]
    args += ["--probes", "1", "--profile-pairs", "2", "--first-pairs", "1", "--skip", "after_serial_level6"]
    run_script("fuse_speed.py", [*args, "--out", str(out)], tmp_path)
    folder = json.loads(out.read_text())["folder"]
    assert folder["pairs"] == 4 and "after_serial_level6" not in folder
    assert folder["after"]["per_s"] > 0 and folder["after"]["wall_ratio"] > 0
    assert folder["after"]["gpu_ms_per_pair"] is None, "no batch ran on a GPU"
    refused = run_script("fuse_speed.py", [*args, "--out", str(out), "--skip", "after"], tmp_path, check=False)
    assert refused.returncode != 0 and "the first setting, after, always runs" in refused.stderr

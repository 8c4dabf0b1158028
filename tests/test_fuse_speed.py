"""``scripts/fuse_speed.py --parts folder`` runs on the CPU: ``taskfuse fuse`` end to end, settings left out."""

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
def test_fuse_speed_times_the_folder_part_without_the_settings_skipped(tmp_path: Path) -> None:
    gen = torch.Generator().manual_seed(0)
    for i in range(4):
        write_image(tmp_path / "pairs" / "ir" / f"{i}.png", torch.rand(1, 48, 64, generator=gen))
        write_image(tmp_path / "pairs" / "vi" / f"{i}.png", torch.rand(3, 48, 64, generator=gen))
    out = tmp_path / "speed.json"
    command = [sys.executable, str(ROOT / "scripts" / "fuse_speed.py"), "--parts", "folder", "--device", "cpu"]
    command += ["--folder", str(tmp_path / "pairs"), "--pairs", "4", "--runs", "1", "--probes", "1"]
    command += ["--profile-pairs", "2", "--first-pairs", "1", "--skip", "after_serial_level6", "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run(command, check=True, env=env, cwd=tmp_path, capture_output=True, text=True)
    folder = json.loads(out.read_text())["folder"]
    assert folder["pairs"] == 4 and "after_serial_level6" not in folder
    assert folder["after"]["per_s"] > 0 and folder["after"]["wall_ratio"] > 0
    refused = subprocess.run([*command, "--skip", "after"], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert refused.returncode != 0 and "the first setting, after, always runs" in refused.stderr

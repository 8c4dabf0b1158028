"""The benchmark scripts run on the CPU by their tests: a folder of random image pairs, and a script of
``scripts/`` in a new process with this checkout's package."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

from taskfuse.data.io import write_image

ROOT = Path(__file__).resolve().parents[1]


def random_pairs(folder: Path, count: int, height: int, width: int) -> Path:
    """``folder`` holding ``count`` random IR (gray) and VIS (RGB) PNG pairs in ``ir/`` and ``vi/``, seed 0."""
    gen = torch.Generator().manual_seed(0)
    for i in range(count):
        write_image(folder / "ir" / f"{i}.png", torch.rand(1, height, width, generator=gen))
        write_image(folder / "vi" / f"{i}.png", torch.rand(3, height, width, generator=gen))
    return folder


def run_script(name: str, args: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    """``python scripts/NAME ARGS`` in ``cwd``, output captured."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, str(ROOT / "scripts" / name), *args]
    return subprocess.run(command, check=check, env=env, cwd=cwd, capture_output=True, text=True)

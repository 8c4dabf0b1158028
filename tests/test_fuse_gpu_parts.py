"""``scripts/fuse_gpu_parts.py`` times every piece of a batch on a GPU, and says so where there is none."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from script_runs import run_script

PIECES = ["h2d", "network", "levels", "scanlines", "deflate", "d2h", "batch", "network_channels_last"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for machines without a CUDA GPU")
def test_fuse_gpu_parts_refuses_without_a_gpu(tmp_path: Path) -> None:
    refused = run_script("fuse_gpu_parts.py", ["--out", str(tmp_path / "parts.json")], tmp_path, check=False)
    assert refused.returncode != 0 and "needs a CUDA GPU" in refused.stderr
    assert not (tmp_path / "parts.json").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA GPU")
def test_fuse_gpu_parts_times_every_piece(tmp_path: Path) -> None:
    out = tmp_path / "parts.json"
    run_script(
        "fuse_gpu_parts.py", ["--batch", "2", "--size", "64", "80", "--repeats", "2", "--out", str(out)], tmp_path
    )
    report = json.loads(out.read_text())
    assert list(report["ms"]) == PIECES and all(ms > 0 for ms in report["ms"].values())
    assert report["ms"]["batch"] >= report["ms"]["deflate"]
    assert out.with_suffix(".md").read_text().count("\n") == len(PIECES) + 2

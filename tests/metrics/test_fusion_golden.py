"""Every golden row (MATLAB/Octave ``analysis_Reference.m`` values) is reproduced by taskfuse.metrics.

Reads whatever is in ``shared/data/golden/vifb12``: each ``<name>.csv`` scores the fused images in the folder
``<name>/`` against ``ir/`` and ``vi/``; every column after ``file`` is a metric name.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from taskfuse.data.io import read_image
from taskfuse.metrics import FusionMetrics
from taskfuse.metrics.fusion import metric_name

GOLDEN = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "golden" / "vifb12"


def _cases() -> list:
    cases = []
    for table in sorted(GOLDEN.glob("*.csv")):
        with table.open(newline="") as fh:
            for row in csv.DictReader(fh):
                cases.append(pytest.param(table.stem, row, id=f"{table.stem}-{row['file']}"))
    return cases or [pytest.param(None, None, id="no-golden-tables")]


def _tensor(path: Path) -> torch.Tensor:
    arr = read_image(path)
    assert arr.dtype == np.uint8, f"{path}: golden images are 8-bit"
    t = torch.from_numpy(arr.copy())
    return t if t.dim() == 2 else t[..., :3].permute(2, 0, 1)


@pytest.mark.parametrize(("fused_dir", "row"), _cases())
def test_matches_matlab_reference(shared_data: Path, fused_dir: str | None, row: dict | None) -> None:
    assert row is not None, f"no golden tables (*.csv) found in {GOLDEN}"
    root = shared_data / "golden" / "vifb12"
    ir, vi, fused = (_tensor(root / d / row["file"]) for d in ("ir", "vi", fused_dir))
    expected = {metric_name(k): float(v) for k, v in row.items() if k != "file"}
    metrics = FusionMetrics(names=list(expected))
    got = {k: v.item() for k, v in metrics.update(fused, ir, vi).items()}
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, rel=1e-4, abs=1e-6), f"{name}: {got[name]!r} != {value!r}"

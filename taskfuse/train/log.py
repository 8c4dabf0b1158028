"""The run's metric log: ``metrics.csv`` in long form (step, name, value), and TensorBoard when installed.

Names are ``train/<loss term>``, ``lr/<network>``, ``speed/img_s``, ``val/<metric>``. Long form keeps one
file valid when strategies log different terms in different phases; pivot it for plots, e.g.
``pandas.read_csv(p).pivot_table(index="step", columns="name", values="value")``. Resuming drops the rows
written after the checkpoint, so the file then reads as one uninterrupted run.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from taskfuse.data.io import atomic_path

HEADER = ("step", "name", "value")


class MetricLog:
    """Appends rows to ``RUN/metrics.csv``; only the main process creates one."""

    def __init__(self, run_dir: Path, resume_step: int | None = None, tensorboard: bool = True) -> None:
        self.path = run_dir / "metrics.csv"
        if resume_step is not None and self.path.is_file():
            self._truncate(resume_step)
        new = not self.path.is_file()
        self._file = self.path.open("a", newline="")
        self._csv = csv.writer(self._file)
        if new:
            self._csv.writerow(HEADER)
        self._tb: Any = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                pass
            else:
                self._tb = SummaryWriter(str(run_dir / "tensorboard"), purge_step=resume_step)

    def _truncate(self, step: int) -> None:
        with self.path.open(newline="") as f:
            rows = [r for r in csv.reader(f)][1:]
        with atomic_path(self.path) as tmp, tmp.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(HEADER)
            w.writerows(r for r in rows if r and int(r[0]) <= step)

    def write(self, step: int, values: dict[str, float]) -> None:
        for name, value in values.items():
            self._csv.writerow((step, name, f"{value:.8g}"))
            if self._tb is not None:
                self._tb.add_scalar(name, value, step)
        self._file.flush()

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()


def read_metrics(path: Path) -> dict[str, dict[int, float]]:
    """``metrics.csv`` as {name: {step: value}}."""
    out: dict[str, dict[int, float]] = {}
    with Path(path).open(newline="") as f:
        for row in csv.DictReader(f):
            out.setdefault(row["name"], {})[int(row["step"])] = float(row["value"])
    return out

"""Fusion-metric reports: per-image CSV, mean ± std tables (Markdown, JSON) and cumulative-distribution plots.

Input is ``{method: {metric: per-image values}}`` for one list of image names, e.g. the ``compute()`` of one
``FusionMetrics`` per method. Written to one folder, each file atomically (a crash leaves the old file or the
new one):

- ``per_image.csv``: ``method, image, <metric>...``, one row per method and image;
- ``summary.md`` and ``summary.json``: mean ± standard deviation (population, ddof = 0) per method and
  metric; with several methods the best mean of each metric is bold and the second ``_x_``, in the
  direction the metric prefers (``higher_is_better``);
- ``cdf_<metric>.png``: the metric's values of each method sorted ascending against the fraction of image
  pairs, one curve per method with its mean in the legend, as in PSFusion (seed 001) Fig. 11: a point
  (x, y) means that 100·x % of the pairs score at most y.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from taskfuse.errors import TaskfuseError
from taskfuse.metrics.table import json_number, mark, markdown_table, rank_marks

Values = Mapping[str, Mapping[str, "Sequence[float] | np.ndarray | torch.Tensor"]]


@dataclass(frozen=True)
class ReportFiles:
    """Paths of the files one ``write_report`` call wrote."""

    per_image: Path
    summary_md: Path
    summary_json: Path
    cdf_plots: dict[str, Path]


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _as_table(values: Values, images: Sequence[str]) -> tuple[list[str], dict[str, dict[str, np.ndarray]]]:
    """Checked float64 arrays ``{method: {metric: (N,)}}`` and the metric names in first-method order."""
    if not values:
        raise TaskfuseError("no methods to report; give at least one method's metric values")
    if not images:
        raise TaskfuseError("no images to report; give at least one image name")
    metrics = list(next(iter(values.values())))
    if not metrics:
        raise TaskfuseError("no metrics to report; give at least one metric per method")
    table: dict[str, dict[str, np.ndarray]] = {}
    for method, per_metric in values.items():
        if list(per_metric) != metrics:
            raise TaskfuseError(
                f"method {method!r} has metrics {list(per_metric)} but the first method has {metrics}; "
                "evaluate every method with the same metrics"
            )
        table[method] = {}
        for metric, v in per_metric.items():
            arr = v.detach().cpu().double().numpy() if isinstance(v, torch.Tensor) else np.asarray(v, np.float64)
            if arr.shape != (len(images),):
                raise TaskfuseError(
                    f"{method!r} {metric}: {arr.size} values for {len(images)} images; give one value per image"
                )
            table[method][metric] = arr
    return metrics, table


def summarize(values: Values, images: Sequence[str], higher_is_better: Mapping[str, bool]) -> dict[str, Any]:
    """The content of ``summary.json``: per method and metric ``mean``, ``std``, ``min``, ``max``; per metric
    the direction and the ``best`` and ``second`` methods (lists, ties shared). NaN is written as ``null``."""
    metrics, table = _as_table(values, images)
    unknown = [m for m in metrics if m not in higher_is_better]
    if unknown:
        raise TaskfuseError(f"no better-direction known for metrics {unknown}; add them to higher_is_better")
    stats = {
        method: {
            metric: {
                "mean": json_number(float(np.mean(a))),
                "std": json_number(float(np.std(a))),
                "min": json_number(float(np.min(a))),
                "max": json_number(float(np.max(a))),
            }
            for metric, a in per_metric.items()
        }
        for method, per_metric in table.items()
    }
    best, second = {}, {}
    for metric in metrics:
        means = {m: float(np.mean(table[m][metric])) for m in table}
        best[metric], second[metric] = rank_marks(means, higher_is_better[metric])
    return {
        "images": len(images),
        "metrics": metrics,
        "higher_is_better": {m: bool(higher_is_better[m]) for m in metrics},
        "methods": stats,
        "best": best,
        "second": second,
    }


def _fmt(x: float | None, digits: int) -> str:
    return "nan" if x is None else f"{x:.{digits}f}"


def summary_markdown(summary: Mapping[str, Any], digits: int = 4) -> str:
    """A caption line and a Markdown table from ``summarize``: methods as rows, ``metric ↑|↓`` columns,
    ``mean ± std`` cells."""
    metrics, direction = summary["metrics"], summary["higher_is_better"]
    best, second = summary["best"], summary["second"]
    header = ["Method", *(f"{m} {'↑' if direction[m] else '↓'}" for m in metrics)]
    rows = []
    for method, per_metric in summary["methods"].items():
        cells = []
        for metric in metrics:
            s = per_metric[metric]
            text = f"{_fmt(s['mean'], digits)} ± {_fmt(s['std'], digits)}"
            cells.append(mark(text, method, best[metric], second[metric]))
        rows.append([method, *cells])
    marks = "; best in bold, second best in _italics_" if len(summary["methods"]) > 1 else ""
    caption = f"Mean ± standard deviation over {summary['images']} image pairs{marks}.\n\n"
    return caption + markdown_table(header, rows)


def per_image_csv(values: Values, images: Sequence[str]) -> str:
    """``method, image, <metric>...`` rows, values at full float precision (``repr``)."""
    metrics, table = _as_table(values, images)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["method", "image", *metrics])
    for method, per_metric in table.items():
        for i, name in enumerate(images):
            writer.writerow([method, name, *(repr(float(per_metric[m][i])) for m in metrics)])
    return buf.getvalue()


def cdf_png(metric: str, curves: Mapping[str, np.ndarray], higher_is_better: bool) -> bytes:
    """PNG bytes of one metric's cumulative-distribution plot (PSFusion Fig. 11 style), drawn with the Agg
    canvas without touching pyplot's global state. Non-finite values are left off the curve; the legend
    shows the mean of all values, as the summary does."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.0, 3.6), dpi=120, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for method, v in curves.items():
        y = np.sort(v[np.isfinite(v)])
        x = np.arange(1, y.size + 1) / max(y.size, 1)
        ax.plot(x, y, marker="." if y.size <= 50 else None, label=f"{method}: {np.mean(v):.4g}")
    ax.set_xlim(0, 1)
    ax.set_xlabel("fraction of image pairs")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} ({'higher' if higher_is_better else 'lower'} is better)")
    ax.grid(alpha=0.3)
    ax.legend(title="method: mean", fontsize="small")
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _safe_name(metric: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", metric)


def write_report(
    values: Values,
    images: Sequence[str],
    out_dir: str | os.PathLike,
    higher_is_better: Mapping[str, bool],
    digits: int = 4,
) -> ReportFiles:
    """Write ``per_image.csv``, ``summary.md``, ``summary.json`` and ``cdf_<metric>.png`` to ``out_dir``."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise TaskfuseError(f"{out}: exists and is not a folder; choose another --out")
    metrics, table = _as_table(values, images)
    summary = summarize(values, images, higher_is_better)
    files = ReportFiles(out / "per_image.csv", out / "summary.md", out / "summary.json", {})
    _write_atomic(files.per_image, per_image_csv(values, images).encode())
    _write_atomic(files.summary_md, summary_markdown(summary, digits).encode())
    _write_atomic(files.summary_json, (json.dumps(summary, indent=2, allow_nan=False) + "\n").encode())
    for metric in metrics:
        path = out / f"cdf_{_safe_name(metric)}.png"
        curves = {method: per_metric[metric] for method, per_metric in table.items()}
        _write_atomic(path, cdf_png(metric, curves, higher_is_better[metric]))
        files.cdf_plots[metric] = path
    return files

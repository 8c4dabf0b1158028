"""Self-contained HTML reports: ``report.html`` of ``taskfuse evaluate`` and ``taskfuse benchmark``.

One page holds everything: tables whose best and second-best cells are marked and whose columns sort on a click
(a few lines of inline JavaScript), plots and images embedded as PNG data URIs, inline CSS. It opens from disk
in any browser with no server and no network. Every text that reaches the page is escaped.

A page is a list of ``Section``s, each a heading and blocks: ``Table`` (usually parsed from the Markdown tables
the reports already write, ``table_from_markdown``, so both files show the same numbers and marks), ``Figure``,
``TileRow`` (a row of labelled images with notes) and ``Paragraph``. ``fusion_sections`` builds the sections of
a fusion-metric comparison: the summary table, the cumulative-distribution plots, and crops of the best and
worst image pairs by one metric (IR | VIS | each method, with every metric's value on that pair).
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from taskfuse.data.io import atomic_path, to_uint8
from taskfuse.errors import TaskfuseError
from taskfuse.metrics.report import ReportFiles
from taskfuse.metrics.table import rank_marks

CROP = 256
"""Side of the centre crops shown for image pairs, in source pixels (smaller images are shown whole)."""
PAIRS = 3
"""Default number of best and of worst pairs shown."""

_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


@dataclass(frozen=True)
class Table:
    """A table: ``rows`` of cell texts under ``header``; ``marks[r][c]`` is ``"best"``, ``"second"`` or ``""``.

    Columns sort on a click of their header: a column with numbers by the first number in each cell (cells
    without one, such as ``-`` or ``n/a``, go last either way), the first column and columns of words by text.
    A header ending in ``↑`` or ``↓`` sorts best first on the first click.
    """

    header: Sequence[str]
    rows: Sequence[Sequence[str]]
    marks: Sequence[Sequence[str]] = ()
    caption: str = ""


@dataclass(frozen=True)
class Figure:
    """A PNG image (bytes) with a caption."""

    png: bytes
    caption: str = ""


@dataclass(frozen=True)
class Tile:
    """One labelled image of a ``TileRow``: (1|3, H, W) float in [0, 1], (H, W[, 3]) uint8, PIL image or PNG."""

    label: str
    image: Tensor | np.ndarray | bytes | Image.Image
    note: str = ""


@dataclass(frozen=True)
class TileRow:
    """A titled row of images side by side, with an optional table under it."""

    title: str
    tiles: Sequence[Tile]
    table: Table | None = None


@dataclass(frozen=True)
class Paragraph:
    """Plain text; ``items`` become a bulleted list after it."""

    text: str = ""
    items: Sequence[str] = ()


Block = Table | Figure | TileRow | Paragraph


@dataclass(frozen=True)
class Section:
    heading: str
    blocks: Sequence[Block] = field(default_factory=list)


def _unmark(cell: str) -> tuple[str, str]:
    cell = cell.strip()
    if len(cell) > 4 and cell.startswith("**") and cell.endswith("**"):
        return cell[2:-2], "best"
    if len(cell) > 2 and cell.startswith("_") and cell.endswith("_"):
        return cell[1:-1], "second"
    return cell, ""


def table_from_markdown(text: str, caption: str = "") -> Table:
    """The first Markdown table in ``text`` (``taskfuse.metrics.table.markdown_table``'s layout): ``**x**`` cells
    become best, ``_x_`` second best (the first column, the row names, is never marked). Text before the table
    becomes the caption unless ``caption`` is given."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.lstrip().startswith("|")), None)
    if start is None or start + 1 >= len(lines):
        raise TaskfuseError("no Markdown table found in the report text; it must contain a '| ... |' table")
    end = start
    while end < len(lines) and lines[end].lstrip().startswith("|"):
        end += 1

    def cells(line: str) -> list[str]:
        return [c.strip() for c in line.strip().strip("|").split("|")]

    header = cells(lines[start])
    rows, marks = [], []
    for line in lines[start + 2 : end]:
        row = cells(line)
        parsed = [(row[0], "")] + [_unmark(c) for c in row[1:]]
        rows.append([t for t, _ in parsed])
        marks.append([m for _, m in parsed])
    before = " ".join(line.strip() for line in lines[:start] if line.strip())
    return Table(header, rows, marks, caption or before)


def png_bytes(image: Tensor | np.ndarray | bytes | Image.Image) -> bytes:
    """PNG bytes of an image: a (1|3, H, W) float tensor in [0, 1], a uint8 array, a PIL image, or PNG bytes."""
    if isinstance(image, bytes):
        return image
    if isinstance(image, Tensor):
        image = to_uint8(image)
    pil = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))
    buf = io.BytesIO()
    pil.save(buf, format="PNG")
    return buf.getvalue()


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _sort_value(text: str) -> str:
    match = _NUMBER.search(text)
    return match.group(0) if match else ""


def _render_table(table: Table) -> str:
    out = ['<table class="sortable">']
    if table.caption:
        out.append(f"<caption>{_e(table.caption)}</caption>")
    heads = []
    for i, h in enumerate(table.header):
        better = ' data-better="high"' if h.endswith("↑") else ' data-better="low"' if h.endswith("↓") else ""
        kind = "number" if i and any(_sort_value(row[i]) for row in table.rows if i < len(row)) else "text"
        heads.append(f'<th scope="col" data-kind="{kind}"{better} title="click to sort">{_e(h)}</th>')
    out.append("<thead><tr>" + "".join(heads) + "</tr></thead><tbody>")
    for r, row in enumerate(table.rows):
        marks = table.marks[r] if r < len(table.marks) else [""] * len(row)
        cells = []
        for c, text in enumerate(row):
            if c == 0:
                cells.append(f'<th scope="row">{_e(text)}</th>')
                continue
            mark = marks[c] if c < len(marks) else ""
            cls = f' class="{mark}"' if mark else ""
            cells.append(f'<td{cls} data-value="{_e(_sort_value(text))}">{_e(text)}</td>')
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def _render_block(block: Block) -> str:
    if isinstance(block, Table):
        return _render_table(block)
    if isinstance(block, Figure):
        caption = f"<figcaption>{_e(block.caption)}</figcaption>" if block.caption else ""
        return f'<figure class="plot"><img src="{data_uri(block.png)}" alt="{_e(block.caption)}">{caption}</figure>'
    if isinstance(block, TileRow):
        tiles = "".join(
            f'<figure class="tile"><figcaption>{_e(t.label)}</figcaption>'
            f'<img src="{data_uri(png_bytes(t.image))}" alt="{_e(t.label)}">'
            + (f'<div class="note">{_e(t.note)}</div>' if t.note else "")
            + "</figure>"
            for t in block.tiles
        )
        table = _render_table(block.table) if block.table is not None else ""
        return f'<div class="pair"><h3>{_e(block.title)}</h3><div class="tiles">{tiles}</div>{table}</div>'
    items = "".join(f"<li>{_e(i)}</li>" for i in block.items)
    return (f"<p>{_e(block.text)}</p>" if block.text else "") + (f"<ul>{items}</ul>" if items else "")


STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:1.5em auto;max-width:1400px;padding:0 1em;color:#1d1d1f}
h1{font-size:1.5em}h2{font-size:1.2em;border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
h3{font-size:1em;margin:.8em 0 .3em}
table{border-collapse:collapse;margin:.6em 0;font-variant-numeric:tabular-nums}
caption{caption-side:top;text-align:left;color:#555;padding-bottom:.3em}
th,td{border:1px solid #ddd;padding:.25em .6em;text-align:right;white-space:nowrap}
th[scope=row],thead th:first-child{text-align:left}
thead th{background:#f3f3f5;cursor:pointer;user-select:none;white-space:nowrap}
thead th[aria-sort=ascending]::after{content:" \\25B2"}thead th[aria-sort=descending]::after{content:" \\25BC"}
td.best{font-weight:700;background:#dff0d8}td.second{text-decoration:underline;background:#f5f9e9}
.legend{color:#555}.plots{display:flex;flex-wrap:wrap;gap:.5em}figure{margin:0}
figure.plot img{width:380px;border:1px solid #eee}figcaption{color:#555;font-size:.9em}
.tiles{display:flex;flex-wrap:wrap;gap:6px}figure.tile{text-align:center}
figure.tile img{display:block;max-height:220px;image-rendering:pixelated;border:1px solid #ccc}
.note{font-size:.85em;color:#333}.pair{margin-bottom:1.2em}
"""

SCRIPT = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("thead th").forEach(function (th, col) {
    th.addEventListener("click", function () {
      var next = th.getAttribute("aria-sort") === "descending" ? "ascending"
        : th.getAttribute("aria-sort") === "ascending" ? "descending"
        : th.dataset.better === "low" || th.dataset.better === undefined ? "ascending" : "descending";
      table.querySelectorAll("thead th").forEach(function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", next);
      var sign = next === "ascending" ? 1 : -1, body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[col], y = b.cells[col];
        if (th.dataset.kind === "number") {
          var u = x.dataset.value === "" ? NaN : Number(x.dataset.value);
          var v = y.dataset.value === "" ? NaN : Number(y.dataset.value);
          if (isNaN(u) || isNaN(v)) return isNaN(u) - isNaN(v);
          return sign * (u - v);
        }
        return sign * x.textContent.localeCompare(y.textContent, undefined, {numeric: true});
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""


def render_page(title: str, sections: Sequence[Section], subtitle: str = "") -> str:
    """The whole page as one string (module docstring)."""
    body = [f"<h1>{_e(title)}</h1>"]
    if subtitle:
        body.append(f'<p class="legend">{_e(subtitle)}</p>')
    body.append(
        '<p class="legend">Best value of a column in <b>bold</b> on green, second best underlined; click a '
        "column header to sort by it (again to reverse).</p>"
    )
    for section in sections:
        body.append(f"<section><h2>{_e(section.heading)}</h2>")
        plots = [b for b in section.blocks if isinstance(b, Figure)]
        rest = [b for b in section.blocks if not isinstance(b, Figure)]
        body += [_render_block(b) for b in rest]
        if plots:
            body.append('<div class="plots">' + "".join(_render_block(p) for p in plots) + "</div>")
        body.append("</section>")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{STYLE}</style></head>\n<body>\n"
        + "\n".join(body)
        + f"\n<script>{SCRIPT}</script>\n</body></html>\n"
    )


def write_page(path: str | os.PathLike, title: str, sections: Sequence[Section], subtitle: str = "") -> Path:
    """Write ``render_page`` to ``path`` atomically; returns the path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(render_page(title, sections, subtitle), encoding="utf-8")
    return path


def centre_crop(image: Tensor, size: int = CROP) -> Tensor:
    """The centre ``size`` x ``size`` window of a (C, H, W) image (the whole image along shorter sides)."""
    h, w = image.shape[-2:]
    top, left = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return image[..., top : top + size, left : left + size]


def ranked_pairs(scores: Mapping[str, np.ndarray], higher_is_better: bool, n: int) -> list[tuple[int, str]]:
    """(index, label) of the ``n`` best and the ``n`` worst pairs by the mean of ``scores`` over methods (NaN
    ignored; pairs with no finite value never rank), best first; a pair is shown once when the two overlap."""
    table = np.stack([np.asarray(v, np.float64) for v in scores.values()])
    valid = np.isfinite(table)
    finite = valid.any(axis=0)
    mean = np.where(valid, table, 0.0).sum(axis=0) / np.maximum(1, valid.sum(axis=0))
    order = [int(i) for i in np.argsort(-mean if higher_is_better else mean, kind="stable") if finite[i]]
    best = order[:n]
    worst = [i for i in order[::-1][:n] if i not in best][::-1]
    return [(i, f"best #{k + 1}") for k, i in enumerate(best)] + [
        (i, f"worst #{len(worst) - k}") for k, i in enumerate(worst)
    ]


def _mark(method: str, best: Sequence[str], second: Sequence[str]) -> str:
    return "best" if method in best else "second" if method in second else ""


def _value(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{x:.4g}"


def pair_rows(
    names: Sequence[str],
    values: Mapping[str, Mapping[str, np.ndarray]],
    metric: str,
    higher_is_better: Mapping[str, bool],
    sources: Callable[[int], tuple[Tensor, Tensor]],
    fused: Callable[[str, int], Tensor],
    n: int = PAIRS,
    crop: int = CROP,
) -> list[TileRow]:
    """One ``TileRow`` per best and worst pair by ``metric`` (``ranked_pairs``): centre crops of IR, VIS and each
    method's fused image, the method's ``metric`` value under its crop, and a table of every metric's value of
    every method on that pair (best and second marked). ``values[method][metric]`` holds one value per name;
    ``sources(i)`` returns pair ``i``'s (IR, VIS) and ``fused(method, i)`` its fused image, (C, H, W) in [0, 1]."""
    methods = list(values)
    if metric not in values[methods[0]]:
        raise TaskfuseError(f"--html-metric {metric}: not among the metrics computed ({', '.join(values[methods[0]])})")
    metrics = list(values[methods[0]])
    rows = []
    for i, label in ranked_pairs({m: values[m][metric] for m in methods}, higher_is_better[metric], n):
        ir, vi = sources(i)
        tiles = [Tile("IR", centre_crop(ir, crop)), Tile("VIS", centre_crop(vi, crop))]
        tiles += [
            Tile(m, centre_crop(fused(m, i), crop), f"{metric} {_value(float(values[m][metric][i]))}") for m in methods
        ]
        header = ["Method", *(f"{k} {'↑' if higher_is_better[k] else '↓'}" for k in metrics)]
        cells = [[m, *(_value(float(values[m][k][i])) for k in metrics)] for m in methods]
        ranks = {k: rank_marks({m: float(values[m][k][i]) for m in methods}, higher_is_better[k]) for k in metrics}
        marks = [["", *(_mark(m, *ranks[k]) for k in metrics)] for m in methods]
        title = f"{names[i]}: {label} by {metric}"
        rows.append(TileRow(title, tiles, Table(header, cells, marks)))
    return rows


def fusion_sections(
    summary_md: str,
    cdf_plots: Mapping[str, bytes],
    rows: Sequence[TileRow],
    metric: str,
    pairs: int,
) -> list[Section]:
    """Sections of a fusion-metric comparison over ``pairs`` image pairs: the summary table (``summary.md``), the
    cumulative-distribution plots by metric, and the best and worst pairs (``pair_rows``)."""
    caption = f"Mean ± standard deviation over {pairs} image pairs."
    return [
        Section("Summary", [table_from_markdown(summary_md, caption)]),
        Section(
            "Distributions over image pairs",
            [Figure(png, f"{m}: values sorted against the fraction of pairs") for m, png in cdf_plots.items()],
        ),
        Section(
            f"Best and worst pairs by {metric} (centre crops of at most {CROP} x {CROP} pixels)",
            list(rows) or [Paragraph("No pair has a finite value of this metric.")],
        ),
    ]


def write_fusion_page(
    path: str | os.PathLike,
    report: ReportFiles,
    names: Sequence[str],
    values: Mapping[str, Mapping[str, Sequence[float] | np.ndarray | Tensor]],
    higher_is_better: Mapping[str, bool],
    sources: Callable[[int], tuple[Tensor, Tensor]],
    fused: Callable[[str, int], Tensor],
    metric: str,
    n: int = PAIRS,
    title: str = "Fusion metrics",
) -> Path:
    """``report.html`` of a fusion-metric comparison (``fusion_sections``) beside the files ``report`` lists
    (``taskfuse.metrics.report.write_report``), whose summary and plots it embeds; arguments as ``pair_rows``."""
    arrays = {
        m: {k: np.asarray(torch.as_tensor(v).detach().cpu(), np.float64) for k, v in per.items()}
        for m, per in values.items()
    }
    plots = {m: p.read_bytes() for m, p in report.cdf_plots.items()}
    rows = pair_rows(names, arrays, metric, higher_is_better, sources, fused, n)
    sections = fusion_sections(report.summary_md.read_text(encoding="utf-8"), plots, rows, metric, len(names))
    subtitle = f"{len(names)} image pairs, {len(arrays)} methods: {', '.join(arrays)}"
    return write_page(path, title, sections, subtitle)

"""Output files of a downstream evaluation: ``results.json``, ``table.md``, the qualitative ``grid.png`` and
``report.html``, which shows the table (sortable, best and second marked) and the grid's images, labelled, in
one file that opens from disk (``taskfuse.metrics.html``). It is always written: it costs no more than the grid,
and a report that exists for every finished evaluation is one a reviewer can open without rerunning anything.

The grid has one row per shown test image and the columns IR | VIS | then, for every input, the input image
and the prediction on it | the ground truth. Tiles are read back from the PNGs the protocol writes
(``OUT/samples/<name>_{ir,vi}.png`` and ``<row folder>/samples/<name>_{input,pred,gt}.png``), so the grid can
be rebuilt from a finished output folder, and are scaled down to at most ``TILE_HEIGHT`` pixels high.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from taskfuse.data.io import atomic_path
from taskfuse.evaluation.base import DownstreamTask
from taskfuse.metrics.html import Paragraph, Section, Tile, TileRow, table_from_markdown, write_page

TILE_HEIGHT = 256
GAP = 2
HEADER = 18


def grid_indices(n: int, k: int) -> list[int]:
    """``min(k, n)`` evenly spaced indices of ``n`` test images, the first and the last included (MSRS lists
    its day scenes before its night scenes, so both appear)."""
    k = min(k, n)
    if k <= 0:
        return []
    if k == 1:
        return [0]
    return sorted({round(j * (n - 1) / (k - 1)) for j in range(k)})


@dataclass
class Outputs:
    results: Path
    table: Path
    grid: Path | None
    html: Path


def _tile(path: Path, height: int) -> Image.Image | None:
    if not path.is_file():
        return None
    with Image.open(path) as im:
        im = im.convert("RGB")
        if im.height > height:
            im = im.resize((max(1, round(im.width * height / im.height)), height), Image.Resampling.LANCZOS)
        return im


def grid_image(out: Path, rows: Mapping[str, Path], names: Sequence[str]) -> Image.Image:
    """The qualitative grid (module docstring) of test images ``names`` for the row folders ``rows``."""
    truth_order = [r for r in ("vi", *rows) if r in rows]
    columns = ["IR", "VIS", *(c for r in rows for c in (r, f"{r} pred")), "GT"]
    lines: list[list[Image.Image | None]] = []
    for name in names:
        ir = _tile(out / "samples" / f"{name}_ir.png", TILE_HEIGHT)
        height = ir.height if ir is not None else TILE_HEIGHT
        line = [ir, _tile(out / "samples" / f"{name}_vi.png", height)]
        for folder in rows.values():
            line += [_tile(folder / "samples" / f"{name}_{k}.png", height) for k in ("input", "pred")]
        truths = (_tile(rows[r] / "samples" / f"{name}_gt.png", height) for r in truth_order)
        line.append(next((t for t in truths if t is not None), None))
        lines.append(line)
    width = max((t.width for line in lines for t in line if t is not None), default=TILE_HEIGHT)
    height = max((t.height for line in lines for t in line if t is not None), default=TILE_HEIGHT)
    canvas = Image.new("RGB", (len(columns) * (width + GAP), HEADER + len(lines) * (height + GAP)), "white")
    draw = ImageDraw.Draw(canvas)
    for c, title in enumerate(columns):
        draw.text((c * (width + GAP) + 3, 3), title[: max(4, width // 7)], fill="black")
    for r, line in enumerate(lines):
        for c, tile in enumerate(line):
            if tile is not None:
                canvas.paste(tile, (c * (width + GAP), HEADER + r * (height + GAP)))
    return canvas


def html_sections(
    task: DownstreamTask,
    results: Mapping[str, Mapping[str, Any]],
    out: Path,
    rows: Mapping[str, Path],
    names: Sequence[str],
    config: Mapping[str, Any],
) -> list[Section]:
    """The sections of ``report.html``: the table, the settings, and one row of images per shown test image
    (IR | VIS | each input and the prediction on it | ground truth), read from the samples the grid is made of."""
    caption = f"{task.name}: scores in percent on the test split, {task.headline} last; one row per input."
    settings = Paragraph("Settings of the protocol:", [f"{k}: {v}" for k, v in config.items()])
    images = []
    for name in names:
        sources = [("IR", out / "samples" / f"{name}_ir.png"), ("VIS", out / "samples" / f"{name}_vi.png")]
        for row, folder in rows.items():
            sources += [(row, folder / "samples" / f"{name}_input.png")]
            sources += [(f"{row} prediction", folder / "samples" / f"{name}_pred.png")]
        truths = [folder / "samples" / f"{name}_gt.png" for folder in rows.values()]
        sources += [("ground truth", path) for path in truths if path.is_file()][:1]
        tiles = [Tile(label, tile) for label, path in sources if (tile := _tile(path, TILE_HEIGHT)) is not None]
        images.append(TileRow(name, tiles))
    return [
        Section("Scores", [table_from_markdown(task.table(results), caption), settings]),
        Section("Test images", images or [Paragraph("No test image shown (--grid 0).")]),
    ]


def write_outputs(
    task: DownstreamTask,
    results: Mapping[str, Mapping[str, Any]],
    rows: Mapping[str, Path],
    out: Path,
    names: Sequence[str],
    config: Mapping[str, Any] | None = None,
) -> Outputs:
    """Write ``out/results.json`` (task, headline, config, results by row), ``out/table.md`` (``task.table``),
    ``out/report.html`` and, when ``names`` lists test images to show, ``out/grid.png``; all atomically."""
    out.mkdir(parents=True, exist_ok=True)
    paths = Outputs(out / "results.json", out / "table.md", out / "grid.png" if names else None, out / "report.html")
    data = {"task": task.name, "headline": task.headline, "config": dict(config or {}), "results": dict(results)}
    with atomic_path(paths.results) as tmp:
        tmp.write_text(json.dumps(data, indent=1) + "\n")
    with atomic_path(paths.table) as tmp:
        tmp.write_text(task.table(results))
    if paths.grid is not None:
        with atomic_path(paths.grid) as tmp:
            grid_image(out, rows, names).save(tmp, format="PNG")
    sections = html_sections(task, results, out, rows, names, dict(config or {}))
    write_page(
        paths.html, f"Downstream evaluation: {task.name}", sections, f"{len(results)} inputs: {', '.join(results)}"
    )
    return paths

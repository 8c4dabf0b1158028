"""Output files of a downstream evaluation: ``results.json``, ``table.md`` and the qualitative ``grid.png``.

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


def write_outputs(
    task: DownstreamTask,
    results: Mapping[str, Mapping[str, Any]],
    rows: Mapping[str, Path],
    out: Path,
    names: Sequence[str],
    config: Mapping[str, Any] | None = None,
) -> Outputs:
    """Write ``out/results.json`` (task, headline, config, results by row), ``out/table.md`` (``task.table``)
    and, when ``names`` lists test images to show, ``out/grid.png``; all atomically."""
    out.mkdir(parents=True, exist_ok=True)
    paths = Outputs(out / "results.json", out / "table.md", out / "grid.png" if names else None)
    data = {"task": task.name, "headline": task.headline, "config": dict(config or {}), "results": dict(results)}
    with atomic_path(paths.results) as tmp:
        tmp.write_text(json.dumps(data, indent=1) + "\n")
    with atomic_path(paths.table) as tmp:
        tmp.write_text(task.table(results))
    if paths.grid is not None:
        with atomic_path(paths.grid) as tmp:
            grid_image(out, rows, names).save(tmp, format="PNG")
    return paths

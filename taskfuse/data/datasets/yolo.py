"""YOLO text box annotations (one ``.txt`` file per image), as the MSRS detection labels are published.

Each non-empty line is ``class cx cy w h``: an integer class index and the box centre and size normalised by
the image width and height. Fields are separated by any run of whitespace (some published files put two
spaces between them); an empty file is an image without objects. A ``classes.txt`` beside the files (or in
their parent folder) names the classes, one per line, as ``name`` or ``index name``.

Normalised coordinates within ``EDGE_TOLERANCE`` outside [0, 1] are rounding left by the labelling tool and are
clipped to the image; coordinates further outside are kept as written so that ``taskfuse datasets check``
reports them.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from taskfuse.data.classes import ClassSet, spread_palette
from taskfuse.data.datasets.voc import BoxTable
from taskfuse.errors import TaskfuseError

EDGE_TOLERANCE = 1e-3
"""How far outside [0, 1] a normalised coordinate may lie and still be clipped to the image edge."""

CLASSES_FILE = "classes.txt"


def parse_yolo(path: str | os.PathLike, size: tuple[int, int], num_classes: int) -> BoxTable:
    """Boxes (N, 5) float32 ``[class, x1, y1, x2, y2]`` in pixels of an image of ``size`` (height, width).

    Class indices outside ``0..num_classes-1`` are left out and listed in ``unknown``; a line that is not five
    numbers with an integer class raises naming the file and the line.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise TaskfuseError(f"{path}: not a readable YOLO text file ({e}); replace or remove it") from e
    h, w = size
    rows: list[list[float]] = []
    unknown: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        try:
            if len(fields) != 5:
                raise ValueError(f"{len(fields)} fields")
            cls = int(fields[0])
            cx, cy, bw, bh = (float(v) for v in fields[1:])
        except ValueError as e:
            raise TaskfuseError(
                f"{path}, line {number}: {line.strip()!r} is not 'class cx cy w h' (an integer class and four "
                f"normalised numbers; {e}); fix the line"
            ) from e
        if not 0 <= cls < num_classes:
            unknown.append(fields[0])
            continue
        box = np.array([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2])
        near = (box >= -EDGE_TOLERANCE) & (box <= 1 + EDGE_TOLERANCE)
        box = np.where(near, box.clip(0, 1), box) * np.array([w, h, w, h])
        rows.append([float(cls), *box.tolist()])
    return BoxTable(np.asarray(rows, dtype=np.float32).reshape(-1, 5), tuple(unknown))


def read_classes(path: str | os.PathLike) -> tuple[str, ...]:
    """Class names of a ``classes.txt``: line i names class i, written ``name`` or ``i name``."""
    path = Path(path)
    names = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) > 1 and fields[0].isdigit():
            if int(fields[0]) != len(names):
                raise TaskfuseError(
                    f"{path}, line {number}: class index {fields[0]} where {len(names)} was expected; list the "
                    "classes in index order, one per line"
                )
            fields = fields[1:]
        names.append(" ".join(fields))
    if not names:
        raise TaskfuseError(f"{path}: names no class; write one class name per line (line i = class i)")
    return tuple(names)


def yolo_classes(folder: Path) -> ClassSet:
    """The classes of the YOLO label ``folder``: its ``classes.txt``, else its parent's."""
    for where in (folder / CLASSES_FILE, folder.parent / CLASSES_FILE):
        if where.is_file():
            names = read_classes(where)
            return ClassSet(names, spread_palette(len(names)))
    raise TaskfuseError(
        f"{folder}: YOLO labels need a {CLASSES_FILE} (one class name per line, line i = class i) in that folder "
        "or its parent; write one"
    )

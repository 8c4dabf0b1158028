"""Pascal VOC XML box annotations (one ``<annotation>`` file per image), as published by M3FD and LLVIP.

Each ``<object>`` gives ``<name>`` and ``<bndbox>`` with ``xmin ymin xmax ymax`` in pixels. The values are
kept as written (both datasets' own converters use them so); a class is looked up case-insensitively.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from taskfuse.data.classes import ClassSet
from taskfuse.errors import TaskfuseError


@dataclass(frozen=True)
class BoxTable:
    """Boxes of one sample, (N, 5) float32 [class, x1, y1, x2, y2], and the class names no class matched."""

    boxes: np.ndarray
    unknown: tuple[str, ...] = ()


def parse_voc(path: str | os.PathLike, classes: ClassSet) -> BoxTable:
    """Boxes (N, 5) float32 [class, x1, y1, x2, y2] of one VOC XML file, plus names that are no class.

    Objects of unknown classes are left out of the boxes and listed in ``unknown``. A file that is not VOC
    XML, or an object without a complete numeric ``<bndbox>``, raises naming the file.
    """
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as e:
        raise TaskfuseError(f"{path}: not a readable VOC XML file ({e}); replace or remove it") from e
    if root.tag != "annotation":
        raise TaskfuseError(f"{path}: root element is <{root.tag}>, expected VOC <annotation>")
    rows: list[list[float]] = []
    unknown: list[str] = []
    for i, obj in enumerate(root.iter("object")):
        name = (obj.findtext("name") or "").strip()
        box = obj.find("bndbox")
        try:
            coords = [float(box.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax")]  # type: ignore[union-attr,arg-type]
        except (AttributeError, TypeError, ValueError) as e:
            raise TaskfuseError(
                f"{path}: object {i} ({name or 'no name'}) lacks a numeric <bndbox> xmin/ymin/xmax/ymax; fix the file"
            ) from e
        cls = classes.index(name)
        if cls is None:
            unknown.append(name or "<empty name>")
            continue
        rows.append([float(cls), *coords])
    boxes = np.asarray(rows, dtype=np.float32).reshape(-1, 5)
    return BoxTable(boxes, tuple(unknown))

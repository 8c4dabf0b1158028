"""Synthetic road scenes written in the ``msrs_det`` layout (``ir/``, ``vi/``, ``labels/<set>/*.txt`` YOLO text),
named so that ``split_of`` puts the wanted number into ``train`` and ``val``, half of each by day, half by night."""

from __future__ import annotations

from pathlib import Path

from taskfuse.data.datasets.msrs_det import ANNOTATION_SETS, split_of
from taskfuse.data.io import write_image
from taskfuse.data.synthetic import render_scene

TO_MSRS_DET = {2: 0, 3: 1, 1: 2}
"""Synthetic (MSRS) class ids of person, bike and car -> msrs_det class indices; cones are left out."""


def scene_names(n_train: int, n_val: int) -> list[str]:
    """MSRS-style names (five digits, D or N) of ``n_train`` train and ``n_val`` val pairs, alternating D and N."""
    wanted = {"train": n_train, "val": n_val}
    names: list[str] = []
    for i in range(100_000):
        name = f"{i:05d}{'DN'[len(names) % 2]}"
        if wanted[split_of(name)] > 0:
            wanted[split_of(name)] -= 1
            names.append(name)
        if not any(wanted.values()):
            return names
    raise AssertionError("not enough names")


def yolo_lines(boxes: list[list[float]], height: int, width: int) -> str:
    lines = []
    for cls, x1, y1, x2, y2 in boxes:
        if int(cls) in TO_MSRS_DET:
            values = ((x1 + x2) / 2 / width, (y1 + y2) / 2 / height, (x2 - x1) / width, (y2 - y1) / height)
            lines.append("  ".join([str(TO_MSRS_DET[int(cls)]), *(f"{v:.6f}" for v in values)]))
    return "\n".join(lines) + ("\n" if lines else "")


def write_msrs_det_scenes(root: Path, n_train: int, n_val: int, height: int = 64, width: int = 80) -> list[str]:
    """Render one scene per name (night for names ending in N) and write it with its boxes in every
    annotation set; returns the names."""
    names = scene_names(n_train, n_val)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    (root / "labels" / "classes.txt").write_text("0 person\n1 bicycle\n2 car\n")
    for i, name in enumerate(names):
        scene = render_scene(i, height, width, night=name.endswith("N"))
        write_image(root / "ir" / f"{name}.png", scene["ir"])
        write_image(root / "vi" / f"{name}.png", scene["vi"])
        text = yolo_lines(scene["boxes"].tolist(), height, width)
        for folder in ANNOTATION_SETS:
            (root / "labels" / folder).mkdir(exist_ok=True)
            (root / "labels" / folder / f"{name}.txt").write_text(text)
    return names

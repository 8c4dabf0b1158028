"""Synthetic road scenes written in the ``msrs_det`` layout, so that everything made for the real labelled MSRS
pairs (``taskfuse benchmark claim``, the ``*_msrs_det`` configs) runs on scenes whose truth is known::

    root/ir/NAME.png, root/vi/NAME.png         registered pairs; NAME is MSRS-style (five digits, D or N)
    root/labels/classes.txt                    0 person, 1 bicycle, 2 car
    root/labels/{fusion,infrared,visible}/NAME.txt   YOLO text boxes, the same in every annotation set
    root/scenes.json                           the settings (a later call with others is refused)

``msrs_det`` splits pairs by a hash of their names (``taskfuse.data.datasets.msrs_det.split_of``); the names
are chosen so that the wanted numbers land in ``train`` and ``val``, alternating day and night. Cones have no
``msrs_det`` class and are left out.

>>> import tempfile
>>> from taskfuse.data.datasets import open_dataset
>>> root = write_msrs_det_scenes(tempfile.mkdtemp(), 4, 2, height=32, width=40)
>>> len(open_dataset("msrs_det", root, "train")), len(open_dataset("msrs_det", root, "val"))
(4, 2)
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from taskfuse.data.classes import MSRS_DET
from taskfuse.data.datasets.msrs_det import ANNOTATION_SETS, split_of
from taskfuse.data.datasets.yolo import CLASSES_FILE
from taskfuse.data.io import write_image, write_text
from taskfuse.data.synthetic.dataset import render_scene
from taskfuse.errors import TaskfuseError

TO_MSRS_DET = {2: 0, 3: 1, 1: 2}
"""Synthetic (MSRS) class ids of person, bike and car -> ``msrs_det`` class indices."""


def scene_names(n_train: int, n_val: int) -> list[str]:
    """MSRS-style names of ``n_train`` train and ``n_val`` val pairs (by ``split_of``), alternating D and N.

    >>> scene_names(2, 1)
    ['00000D', '00001N', '00019D']
    """
    wanted = {"train": n_train, "val": n_val}
    names: list[str] = []
    i = 0
    while any(wanted.values()):
        name = f"{i:05d}{'DN'[len(names) % 2]}"
        split = split_of(name)
        if wanted[split] > 0:
            wanted[split] -= 1
            names.append(name)
        i += 1
    return names


def yolo_lines(boxes: list[list[float]], height: int, width: int) -> str:
    """YOLO text (class, centre x, centre y, width, height; relative) of ``[class, x1, y1, x2, y2]`` pixel boxes,
    the classes ``msrs_det`` knows only."""
    lines = []
    for cls, x1, y1, x2, y2 in boxes:
        if int(cls) in TO_MSRS_DET:
            values = ((x1 + x2) / 2 / width, (y1 + y2) / 2 / height, (x2 - x1) / width, (y2 - y1) / height)
            lines.append("  ".join([str(TO_MSRS_DET[int(cls)]), *(f"{v:.6f}" for v in values)]))
    return "\n".join(lines) + ("\n" if lines else "")


def write_msrs_det_scenes(
    root: str | os.PathLike, n_train: int, n_val: int, height: int = 128, width: int = 160
) -> Path:
    """Render scene ``i`` (night for names ending in N) for every name of ``scene_names`` and write it with its
    boxes into ``root`` (module docstring); returns ``root``.

    Files are written atomically and existing ones kept, so an interrupted call resumes; a root written with
    other numbers or sizes is refused rather than mixed.
    """
    if min(n_train, n_val) < 1 or min(height, width) < 16:
        raise TaskfuseError(
            f"synthetic msrs_det scenes: give >= 1 train and val pair of >= 16 pixels a side, got "
            f"{n_train} / {n_val} of {height} x {width}"
        )
    root = Path(root)
    settings = {
        "generator": "taskfuse.data.synthetic.msrs_det",
        "train": n_train,
        "val": n_val,
        "height": height,
        "width": width,
    }
    record = root / "scenes.json"
    if record.is_file():
        if json.loads(record.read_text()) != settings:
            raise TaskfuseError(f"{record}: written with other settings; write to another folder or delete this one")
    elif root.is_dir() and any(root.iterdir()):
        raise TaskfuseError(f"{root}: not empty and holds no scenes.json; write the scenes to a new folder")
    write_text(record, json.dumps(settings) + "\n")
    write_text(root / "labels" / CLASSES_FILE, "".join(f"{i} {n}\n" for i, n in enumerate(MSRS_DET.names)))
    for i, name in enumerate(scene_names(n_train, n_val)):
        files = [root / "ir" / f"{name}.png", root / "vi" / f"{name}.png"]
        files += [root / "labels" / folder / f"{name}.txt" for folder in ANNOTATION_SETS]
        if all(f.is_file() for f in files):
            continue
        scene = render_scene(i, height, width, night=name.endswith("N"))
        write_image(files[0], scene["ir"])
        write_image(files[1], scene["vi"])
        text = yolo_lines(scene["boxes"].tolist(), height, width)
        for path in files[2:]:
            write_text(path, text)
    return root

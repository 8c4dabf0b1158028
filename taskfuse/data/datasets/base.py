"""Common ground of the dataset readers: one sample dict, lazy decoding, errors that name files and the fix.

Every reader yields the same dict::

    ir         (1, H, W) float32 in [0, 1]
    vi         (3, H, W) float32 in [0, 1], RGB; a gray visible image is repeated to 3 channels
    vi_gray    bool, True when the visible image was stored gray
    name       str, the file stem shared by the files of the sample
    label      (H, W) int64 class indices, 255 = ignore             (segmentation sets)
    boxes      (N, 5) float32 [class, x1, y1, x2, y2] in pixels      (detection and keypoint sets; VOC XML or
                                                                     YOLO text files, ``yolo.py``)
    keypoints  (N, K, 3) float32 [x, y, v], v as in COCO (0, 1, 2)  (keypoint sets)

Construction lists folders and reads the small text, JSON or XML indexes only; images and labels are decoded
in ``__getitem__``. A sample missing one of its files is an error listing every such sample, unless
``skip_incomplete=True`` leaves those samples out (they stay listed in ``incomplete``).
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor
from torch.utils.data import Dataset

from taskfuse.data.classes import IGNORE_INDEX, ClassSet
from taskfuse.data.datasets.voc import BoxTable, parse_voc
from taskfuse.data.datasets.yolo import parse_yolo
from taskfuse.data.io import IR_RANGES, image_size, read_ir, read_vi
from taskfuse.data.pairs import list_images, listing
from taskfuse.errors import TaskfuseError
from taskfuse.registry import Registry

DATASETS: Registry = Registry("dataset")
"""Dataset layouts by name; each module of this package registers its reader."""


@dataclass(frozen=True)
class Record:
    """The files of one sample; ``label`` is an index-label image, ``boxes`` a VOC XML or YOLO text file."""

    name: str
    ir: Path
    vi: Path
    label: Path | None = None
    boxes: Path | None = None


def list_files(folder: Path, suffix: str) -> dict[str, Path]:
    """Files ending in ``suffix`` (case-insensitive) in ``folder``, keyed by stem; a missing folder raises."""
    if not folder.is_dir():
        raise TaskfuseError(f"{folder}: no such folder; check the dataset root and layout (docs/datasets.md)")
    return {
        p.stem: p
        for p in sorted(folder.iterdir())
        if p.is_file() and p.suffix.lower() == suffix and not p.name.startswith(".")
    }


def join_stems(
    listed: dict[str, dict[str, Path]],
    where: dict[str, Path],
    stems: list[str] | None = None,
    primary: tuple[str, ...] | None = None,
) -> tuple[dict[str, dict[str, Path]], list[str]]:
    """Match files of several folders by stem.

    ``listed`` maps a role ("ir", "vi", "label", "boxes") to its files by stem, ``where`` the role to its
    folder. The samples are ``stems`` when given (a split list), else every stem found in a ``primary`` role
    (default: any role). Returns the complete groups by stem and one message per sample lacking a file.
    """
    roles = tuple(listed)
    if stems is None:
        stems = sorted(set().union(*(listed[r] for r in primary or roles)))
    complete: dict[str, dict[str, Path]] = {}
    missing = []
    for stem in stems:
        have = {r: listed[r][stem] for r in roles if stem in listed[r]}
        if len(have) == len(roles):
            complete[stem] = have
            continue
        lacking = [r for r in roles if r not in have]
        found = ", ".join(str(p) for p in have.values()) or stem
        folders = ", ".join(str(where[r]) for r in lacking)
        missing.append(f"{found} has no {'/'.join(lacking)} file in {folders}")
    return complete, missing


def scan_folders(
    folders: dict[str, Path],
    boxes: Path | None = None,
    stems: list[str] | None = None,
    primary: tuple[str, ...] | None = None,
    box_suffix: str = ".xml",
) -> tuple[list[Record], list[str]]:
    """Records from image folders by role ("ir", "vi", optional "label") and an optional folder of box files
    (``box_suffix`` ".xml" for VOC XML, ".txt" for YOLO text).

    Missing or empty image folders raise (``list_images``); see ``join_stems`` for ``stems`` and ``primary``.
    """
    listed = {role: list_images(folder) for role, folder in folders.items()}
    where = dict(folders)
    if boxes is not None:
        listed["boxes"] = list_files(boxes, box_suffix)
        where["boxes"] = boxes
    complete, missing = join_stems(listed, where, stems, primary)
    records = [Record(stem, g["ir"], g["vi"], g.get("label"), g.get("boxes")) for stem, g in complete.items()]
    return records, missing


def read_label_array(path: str | os.PathLike) -> np.ndarray:
    """Decode an index-label image to (H, W) int64 without remapping (palette PNGs give their indices).

    A colour label (three different channels) raises: readers need class indices, not a visualisation.
    """
    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("1", "LA"):
                im = im.convert("L")
            arr = np.asarray(im)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise TaskfuseError(f"{path}: not a readable label image ({e}); replace or remove it") from e
    if arr.ndim == 3:
        rgb = arr[..., :3]
        if not (np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2])):
            raise TaskfuseError(
                f"{path}: a colour label image; point the reader at the index labels (one value per class), "
                "not at the coloured visualisations"
            )
        arr = rgb[..., 0]
    return arr.astype(np.int64)


def invalid_label_values(label: np.ndarray, num_classes: int) -> list[int]:
    """Distinct values of ``label`` that are neither a class (0..num_classes-1) nor IGNORE_INDEX."""
    bad = label[((label < 0) | (label >= num_classes)) & (label != IGNORE_INDEX)]
    return [int(v) for v in np.unique(bad)]


class PairedDataset(Dataset, ABC):
    """Base of every reader: registered IR/VIS pairs plus optional label, boxes or keypoints per sample.

    Options: ``labels=False`` reads the image pairs only (annotation folders may then be absent);
    ``ir_range`` scales infrared values (see ``taskfuse.data.io``); ``skip_incomplete`` leaves out samples
    missing a file instead of raising.

    Subclasses set ``layout``, ``splits``, ``default_split``, ``annotations`` and ``classes`` and implement
    ``scan``; readers whose files are not one IR and one VIS image per sample also override ``read_images``
    and ``image_files``.
    """

    layout: ClassVar[str] = ""
    splits: ClassVar[tuple[str, ...]] = ("train", "test")
    default_split: ClassVar[str] = "train"
    annotations: ClassVar[str] = "none"
    classes: ClassSet | None = None
    box_classes: ClassSet | None = None
    """Classes of the boxes' class column when they differ from ``classes`` (YOLO boxes beside segmentation
    labels); None = ``classes``."""

    def __init__(
        self,
        root: str | os.PathLike,
        split: str | None = None,
        *,
        labels: bool = True,
        ir_range: str = "auto",
        skip_incomplete: bool = False,
    ) -> None:
        self.root = Path(root)
        self.labels = labels
        if not self.root.is_dir():
            raise TaskfuseError(f"{self.root}: no such folder; point at the {self.layout} dataset root")
        self.split = split or self.default_split
        if ir_range not in IR_RANGES:
            raise TaskfuseError(f"ir_range {ir_range!r} is not one of {', '.join(IR_RANGES)}")
        self.ir_range = ir_range
        records, incomplete = self.scan()
        if incomplete and not skip_incomplete:
            raise TaskfuseError(
                f"{self.layout} {self.split!r} in {self.root}: {len(incomplete)} sample(s) lack a file: "
                f"{listing(incomplete, '; ')}. Add the missing files, or pass skip_incomplete=True to read only "
                "complete samples"
            )
        if not records:
            lacking = f" ({len(incomplete)} lack a file: {listing(incomplete, '; ')})" if incomplete else ""
            raise TaskfuseError(
                f"{self.root}: no complete {self.layout} samples in split {self.split!r}{lacking}; compare the "
                "folder with the layout in docs/datasets.md"
            )
        self.records: list[Record] = records
        self.incomplete: list[str] = incomplete

    @abstractmethod
    def scan(self) -> tuple[list[Record], list[str]]:
        """List the samples of ``self.split``: complete records and one message per incomplete sample."""

    def check_split(self, available: tuple[str, ...] | list[str]) -> None:
        if self.split not in available:
            raise TaskfuseError(
                f"{self.root}: {self.layout} has no split {self.split!r}; available: {', '.join(available) or 'none'}"
            )

    def __len__(self) -> int:
        return len(self.records)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(root={str(self.root)!r}, split={self.split!r}, samples={len(self)})"

    def image_files(self, rec: Record) -> dict[str, Path]:
        """The image files of ``rec`` by role, for checks that name each file."""
        return {"ir": rec.ir, "vi": rec.vi}

    def read_images(self, rec: Record) -> tuple[Tensor, Tensor]:
        """Decode (ir (1, H, W), vi (3|1, H, W)) of ``rec``."""
        return read_ir(rec.ir, self.ir_range), read_vi(rec.vi)

    def read_label(self, rec: Record, size: tuple[int, int]) -> Tensor:
        """The (H, W) int64 label of ``rec``, checked against the image size and the class set."""
        assert rec.label is not None and self.classes is not None
        arr = read_label_array(rec.label)
        if arr.shape != size:
            raise TaskfuseError(
                f"{rec.label}: label is {arr.shape[1]}x{arr.shape[0]} but its images are {size[1]}x{size[0]}; "
                "replace the label or remove the sample"
            )
        bad = invalid_label_values(arr, self.classes.num_classes)
        if bad:
            raise TaskfuseError(
                f"{rec.label}: label values {bad} are not {self.layout} classes (0..{self.classes.num_classes - 1}, "
                f"{IGNORE_INDEX} = ignore); fix or remove the file (taskfuse datasets check lists every such file)"
            )
        return torch.from_numpy(arr)

    def read_boxes(self, rec: Record) -> BoxTable | None:
        """Boxes of ``rec`` from its VOC XML or YOLO text file (by suffix), or None when the sample has none."""
        if rec.boxes is None:
            return None
        classes = self.box_classes or self.classes
        assert classes is not None
        if rec.boxes.suffix.lower() == ".txt":
            return parse_yolo(rec.boxes, image_size(rec.ir), classes.num_classes)
        return parse_voc(rec.boxes, classes)

    def read_keypoints(self, rec: Record) -> np.ndarray | None:
        """(N, K, 3) keypoints of ``rec``, or None for sets without keypoints."""
        return None

    def __getitem__(self, index: int) -> dict[str, Any]:
        rec = self.records[index]
        ir, vi = self.read_images(rec)
        if ir.shape[-2:] != vi.shape[-2:]:
            files = " and ".join(str(p) for p in dict.fromkeys(self.image_files(rec).values()))
            raise TaskfuseError(
                f"{files}: infrared is {ir.shape[-1]}x{ir.shape[-2]} but visible is {vi.shape[-1]}x{vi.shape[-2]}; "
                f"{self.layout} pairs must be registered images of one size (taskfuse datasets check lists all)"
            )
        gray = vi.shape[0] == 1
        sample: dict[str, Any] = {
            "ir": ir,
            "vi": vi.expand(3, -1, -1).contiguous() if gray else vi,
            "vi_gray": gray,
            "name": rec.name,
        }
        size = (ir.shape[-2], ir.shape[-1])
        if rec.label is not None:
            sample["label"] = self.read_label(rec, size)
        table = self.read_boxes(rec)
        if table is not None:
            if table.unknown:
                known = self.box_classes or self.classes
                names = known.names if known else ()
                raise TaskfuseError(
                    f"{rec.boxes or rec.name}: unknown class(es) {', '.join(sorted(set(table.unknown)))}; "
                    f"{self.layout} classes are {', '.join(names)}. Correct the annotation "
                    "(taskfuse datasets check lists every such file)"
                )
            sample["boxes"] = torch.from_numpy(table.boxes)
        keypoints = self.read_keypoints(rec)
        if keypoints is not None:
            sample["keypoints"] = torch.from_numpy(keypoints)
        return sample

"""Validate a dataset folder against its layout and report every problem, counted by kind.

Every image is decoded in full by the dataset's own reader (a header alone does not reveal a truncated or
corrupt file), and every label too, one sample after the other behind a progress bar. The same readers as
``open_dataset`` list and decode the samples, so a clean report means the dataset opens and every sample
decodes to a consistent sample dict, and that ``taskfuse fuse`` accepts its images.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from taskfuse.data.classes import IGNORE_INDEX
from taskfuse.data.datasets import names, open_dataset
from taskfuse.data.datasets.base import PairedDataset, Record, invalid_label_values, read_label_array
from taskfuse.data.io import read_image
from taskfuse.errors import TaskfuseError

LAYOUT = "layout"
MISSING = "missing partners"
UNREADABLE = "unreadable files"
SIZE = "IR/VIS size mismatches"
LABEL_SIZE = "label size mismatches"
LABEL_VALUES = "label values out of range"
BOX_OUTSIDE = "boxes outside the image or empty"
BOX_CLASS = "boxes of unknown classes"
KINDS = (LAYOUT, MISSING, UNREADABLE, SIZE, LABEL_SIZE, LABEL_VALUES, BOX_OUTSIDE, BOX_CLASS)
_SHOWN = 5


@dataclass
class CheckReport:
    """Problems found in one dataset folder, by kind (see ``KINDS``), each an explanatory line."""

    root: Path
    layout: str
    split: str
    samples: int = 0
    problems: dict[str, list[str]] = field(default_factory=dict)

    def add(self, kind: str, message: str) -> None:
        self.problems.setdefault(kind, []).append(message)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        """The report as text: one block per kind with its count and the first few cases, then a total."""
        where = f"{self.root} ({self.layout}, split {self.split})"
        if self.ok:
            return f"ok: {self.samples} samples in {where}, no problems found"
        lines = [f"problems in {where}:"]
        for kind in KINDS:
            found = self.problems.get(kind, [])
            if not found:
                continue
            lines.append(f"  {kind}: {len(found)}")
            lines.extend(f"    {m}" for m in found[:_SHOWN])
            if len(found) > _SHOWN:
                lines.append(f"    … and {len(found) - _SHOWN} more")
        total = sum(len(v) for v in self.problems.values())
        lines.append(f"summary: {self.samples} samples checked, {total} problem(s) of {len(self.problems)} kind(s)")
        return "\n".join(lines)


def check_dataset(
    root: str | os.PathLike, layout: str, split: str | None = None, progress: bool = True, **options: object
) -> CheckReport:
    """Check the dataset at ``root`` in ``layout`` (a name of ``taskfuse.data.datasets.names()``).

    An unknown layout name raises; a folder that does not match the layout is reported as a ``layout``
    problem. ``options`` go to the reader (e.g. ``thermal="thermal_raw"`` for PST900).
    """
    try:
        ds = open_dataset(layout, root, split, skip_incomplete=True, **options)
    except TaskfuseError as e:
        if layout.lower() not in names():
            raise
        report = CheckReport(Path(root), layout.lower(), split or "default")
        report.add(LAYOUT, str(e))
        return report
    report = CheckReport(ds.root, ds.layout, ds.split, samples=len(ds) + len(ds.incomplete))
    for message in ds.incomplete:
        report.add(MISSING, message)
    for rec in tqdm(
        ds.records, desc=f"checking {ds.layout} {ds.split}", unit="sample", disable=None if progress else True
    ):
        _check_record(ds, rec, report)
    return report


def _decode(ds: PairedDataset, rec: Record, report: CheckReport) -> tuple[int, int] | None:
    """Decode the images of ``rec`` as loading does; their shared (H, W), or None after reporting why not.

    When the reader fails, each file is decoded alone so that every unreadable one is reported, not only the
    first; when they all decode, the reader's own complaint (a false-colour infrared image, a missing
    channel) is the problem.
    """
    files = ds.image_files(rec)
    try:
        ir, vi = ds.read_images(rec)
    except TaskfuseError as e:
        errors = [message for path in files.values() if (message := _unreadable(path))]
        for message in errors or [str(e)]:
            report.add(UNREADABLE, message)
        return None
    if ir.shape[-2:] != vi.shape[-2:]:
        sizes = ((ir.shape[-1], ir.shape[-2]), (vi.shape[-1], vi.shape[-2]))
        report.add(SIZE, ", ".join(f"{path} {w}x{h}" for path, (w, h) in zip(files.values(), sizes, strict=False)))
        return None
    return ir.shape[-2], ir.shape[-1]


def _unreadable(path: Path) -> str | None:
    try:
        read_image(path)
    except TaskfuseError as e:
        return str(e)
    return None


def _check_record(ds: PairedDataset, rec: Record, report: CheckReport) -> None:
    size = _decode(ds, rec, report)
    if rec.label is not None and ds.classes is not None:
        try:
            label = read_label_array(rec.label)
        except TaskfuseError as e:
            report.add(UNREADABLE, str(e))
        else:
            if size is not None and label.shape != size:
                report.add(LABEL_SIZE, f"{rec.label} {label.shape[1]}x{label.shape[0]}, images {size[1]}x{size[0]}")
            bad = invalid_label_values(label, ds.classes.num_classes)
            if bad:
                report.add(
                    LABEL_VALUES,
                    f"{rec.label}: values {bad} (allowed 0..{ds.classes.num_classes - 1} and {IGNORE_INDEX})",
                )
    try:
        table = ds.read_boxes(rec)
    except TaskfuseError as e:
        report.add(UNREADABLE, str(e))
        return
    if table is None:
        return
    source = rec.boxes or rec.name
    for name in table.unknown:
        report.add(BOX_CLASS, f"{source}: {name}")
    if size is None:
        return
    h, w = size
    for cls, x1, y1, x2, y2 in table.boxes.tolist():
        if x1 < 0 or y1 < 0 or x2 > w or y2 > h or x2 <= x1 or y2 <= y1:
            report.add(BOX_OUTSIDE, f"{source}: class {int(cls)} box [{x1:g}, {y1:g}, {x2:g}, {y2:g}] in {w}x{h}")

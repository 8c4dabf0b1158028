"""Semantic-segmentation scores from a confusion matrix: per-class IoU, mIoU, pixel and mean class accuracy.

With ``cm[t, p]`` the number of pixels of true class t predicted as p (pixels labelled ``ignore_index`` are
not counted), for class c::

    IoU_c = cm[c, c] / (Σ_p cm[c, p] + Σ_t cm[t, c] - cm[c, c])      (TP / (TP + FP + FN))
    Acc_c = cm[c, c] / Σ_p cm[c, p]                                    (recall of class c)
    pixel accuracy = Σ_c cm[c, c] / Σ cm

This is the "pixel intersection-over-union" of seed 000 §4 and seed 001 §4.1. A class absent from both
prediction and ground truth has IoU 0/0: it is NaN and left out of the mIoU (a class that is predicted but
never present has IoU 0 and does count). A class absent from the ground truth has NaN accuracy, left out of
the mean class accuracy likewise.

Seed 000 (Tables 1-2) averages the mIoU over seven MFNet classes only, leaving out ``unlabelled`` (background)
and ``guardrail`` to compare with methods that report those seven; ``compute(classes=MFNET_7_CLASSES)`` gives
that number. Seed 002 (MAFS, Tables IV and VI) averages over the eight object classes, all but
``unlabelled`` (``MFNET_8_CLASSES``). ``CLASS_SUBSETS`` names both for the command line.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from taskfuse.data.classes import IGNORE_INDEX
from taskfuse.errors import TaskfuseError
from taskfuse.metrics.table import json_number, mark, markdown_table, rank_marks

MFNET_7_CLASSES = ("car", "person", "bike", "curve", "car_stop", "color_cone", "bump")
"""The MFNet/MSRS classes of seed 000's mIoU: all but ``unlabelled`` and ``guardrail``."""
MFNET_8_CLASSES = ("car", "person", "bike", "curve", "car_stop", "guardrail", "color_cone", "bump")
"""The MFNet/MSRS classes of seed 002's mIoU: all but ``unlabelled``."""
CLASS_SUBSETS = {"mfnet7": MFNET_7_CLASSES, "mfnet8": MFNET_8_CLASSES}
"""Named class subsets of the papers' tables, by the name the command line accepts."""


def mean_over(values: Mapping[str, float | None], classes: Sequence[str]) -> float:
    """NaN-skipping mean of ``values[c]`` over ``classes`` (None counts as NaN, as results.json writes it); NaN
    when every one is NaN. Recomputes ``compute``'s mIoU of another subset from its per-class IoU."""
    picked = [values[c] for c in classes]
    kept = [v for v in picked if v is not None and not math.isnan(v)]
    return sum(kept) / len(kept) if kept else math.nan


def _labels(pred: Tensor, num_classes: int) -> Tensor:
    """(B, H, W) integer labels, or the argmax of (B, C, H, W) logits over C."""
    if pred.dim() == 4:
        if pred.shape[1] != num_classes:
            raise TaskfuseError(f"logits have {pred.shape[1]} channels but num_classes is {num_classes}")
        return pred.argmax(dim=1)
    if pred.dim() != 3 or pred.is_floating_point():
        raise TaskfuseError(
            f"predictions must be (B, H, W) integer labels or (B, C, H, W) logits; got {pred.dtype} {tuple(pred.shape)}"
        )
    return pred


def confusion_matrix(pred: Tensor, target: Tensor, num_classes: int, ignore_index: int = IGNORE_INDEX) -> Tensor:
    """(C, C) int64 counts ``cm[true, predicted]`` of one batch, on the inputs' device.

    ``pred`` is (B, H, W) labels or (B, C, H, W) logits, ``target`` (B, H, W) labels in 0..C-1 or
    ``ignore_index``; any other label value raises.
    """
    labels = _labels(pred, num_classes)
    if target.dim() != 3 or target.is_floating_point() or labels.shape != target.shape:
        raise TaskfuseError(
            f"target must be (B, H, W) integer labels matching the predictions {tuple(labels.shape)}; "
            f"got {target.dtype} {tuple(target.shape)}"
        )
    target = target.to(labels.device, torch.int64)
    labels = labels.to(torch.int64)
    valid = target != ignore_index
    t, p = target[valid], labels[valid]
    bad_t = (t < 0) | (t >= num_classes)
    if bad_t.any():
        values = torch.unique(t[bad_t])[:5].tolist()
        raise TaskfuseError(
            f"target holds labels {values} outside 0..{num_classes - 1} and not ignore_index={ignore_index}; "
            "raise num_classes or map those labels to the ignore index"
        )
    if ((p < 0) | (p >= num_classes)).any():
        raise TaskfuseError(f"predicted labels must lie in 0..{num_classes - 1}")
    return torch.bincount(t * num_classes + p, minlength=num_classes**2).reshape(num_classes, num_classes)


def iou_from_confusion(cm: Tensor) -> Tensor:
    """(C,) float64 IoU per class from ``cm[true, predicted]``; NaN where the class is in neither."""
    cm = cm.to(torch.float64)
    tp = cm.diagonal()
    return tp / (cm.sum(dim=1) + cm.sum(dim=0) - tp)


class SegmentationMetrics:
    """Streaming confusion matrix over batches; ``compute`` gives IoU, mIoU and accuracies."""

    def __init__(
        self, num_classes: int, ignore_index: int = IGNORE_INDEX, class_names: Sequence[str] | None = None
    ) -> None:
        if num_classes < 1:
            raise TaskfuseError(f"num_classes must be at least 1, got {num_classes}")
        if class_names is not None and len(class_names) != num_classes:
            raise TaskfuseError(f"class_names has {len(class_names)} names for num_classes={num_classes}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.class_names = tuple(class_names or map(str, range(num_classes)))
        self.cm = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    def reset(self) -> None:
        self.cm = torch.zeros_like(self.cm)

    def update(self, pred: Tensor, target: Tensor) -> None:
        """Add a batch: ``pred`` (B, H, W) labels or (B, C, H, W) logits, ``target`` (B, H, W) labels."""
        batch = confusion_matrix(pred, target, self.num_classes, self.ignore_index)
        self.cm = self.cm.to(batch.device) + batch

    def _indices(self, classes: Sequence[str | int]) -> list[int]:
        out = []
        for c in classes:
            if isinstance(c, int) and 0 <= c < self.num_classes:
                out.append(c)
            elif c in self.class_names:
                out.append(self.class_names.index(c))
            else:
                raise TaskfuseError(
                    f"class {c!r} is not one of this metric's classes ({', '.join(self.class_names)}); "
                    "give class names or indices"
                )
        return out

    def compute(self, classes: Sequence[str | int] | None = None) -> dict[str, Any]:
        """Scores as Python floats: ``iou`` and ``acc`` (dicts over all classes, NaN as described in the
        module docstring), ``miou`` and ``mean_acc`` (NaN-skipping means over ``classes``, default all; e.g.
        ``MFNET_7_CLASSES``), ``pixel_acc`` (over every labelled pixel) and ``classes`` (the names averaged).
        """
        idx = self._indices(classes) if classes is not None else list(range(self.num_classes))
        cm = self.cm.to(torch.float64)
        iou = iou_from_confusion(self.cm)
        acc = cm.diagonal() / cm.sum(dim=1)
        total = cm.sum()
        return {
            "iou": dict(zip(self.class_names, iou.tolist(), strict=True)),
            "acc": dict(zip(self.class_names, acc.tolist(), strict=True)),
            "miou": float(iou[idx].nanmean()),
            "mean_acc": float(acc[idx].nanmean()),
            "pixel_acc": float(cm.diagonal().sum() / total) if total > 0 else float("nan"),
            "classes": [self.class_names[i] for i in idx],
        }


def iou_table(results: Mapping[str, Mapping[str, Any]], percent: bool = True, digits: int = 2) -> tuple[str, dict]:
    """Markdown table of per-class IoU and mIoU, one row per method, in the layout of seed 000 Table 1.

    ``results`` maps a method name to its ``SegmentationMetrics.compute`` result; the columns are the classes
    its mIoU was averaged over, then ``mIoU``. Every column marks the best value in bold and the second best
    as ``_x_``. Returns the Markdown and the same numbers as a JSON-ready dict (``columns``, ``rows``,
    ``best``, ``second``; NaN as ``None``; values in percent when ``percent``).
    """
    if not results:
        raise TaskfuseError("iou_table needs at least one method's results")
    columns = list(next(iter(results.values()))["classes"])
    for method, res in results.items():
        if list(res["classes"]) != columns:
            raise TaskfuseError(
                f"{method!r} averages mIoU over {list(res['classes'])} but the first method over {columns}; "
                "compute every method with the same classes"
            )
    scale = 100.0 if percent else 1.0
    rows = {
        m: {**{c: res["iou"][c] * scale for c in columns}, "mIoU": res["miou"] * scale} for m, res in results.items()
    }
    header = ["Method", *columns, "mIoU"]
    ranks = {c: rank_marks({m: rows[m][c] for m in rows}) for c in header[1:]}
    body = [[m, *(mark(f"{rows[m][c]:.{digits}f}", m, *ranks[c]) for c in header[1:])] for m in rows]
    data = {
        "columns": header[1:],
        "rows": {m: {c: json_number(v) for c, v in r.items()} for m, r in rows.items()},
        "best": {c: ranks[c][0] for c in header[1:]},
        "second": {c: ranks[c][1] for c in header[1:]},
    }
    return markdown_table(header, body), data

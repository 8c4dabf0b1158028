"""Semantic segmentation as a downstream task (seed 000 §4.4 and Table 1, seed 001 Tables 1, 2 and 5).

``SegmentationTask`` trains a segmenter of ``taskfuse.tasks.segmentation`` (the family's pixel cross-entropy)
and scores per-class IoU and mIoU over every class of the dataset, background included, as PSFusion's Table 2
does, or over a subset (``--classes``): seed 000 averages seven MFNet classes (``mfnet7``), MAFS eight
(``mfnet8``). The subset only changes the scoring: a rerun with another subset rescores the stored per-class
IoU without training again.

``direct_segmentation`` scores the segmentation head of a fusion method that has one (its spec's
``seg_head``: PSFusion's semantic head, MAFS's) on the test pairs, as PSFusion's Table 5 compares the
segmentation of feature-level and image-level schemes; its row enters the same table as ``NAME (direct)``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset
from tqdm import tqdm

from taskfuse import models
from taskfuse.data.classes import ClassSet
from taskfuse.data.color import recombine
from taskfuse.data.io import atomic_path, write_image
from taskfuse.device import resolve_device
from taskfuse.errors import TaskfuseError
from taskfuse.evaluation.base import DOWNSTREAM, DownstreamTask
from taskfuse.evaluation.inputs import name_and_path, parse_inputs
from taskfuse.evaluation.report import grid_indices
from taskfuse.metrics.segmentation import CLASS_SUBSETS, SegmentationMetrics, iou_table, mean_over
from taskfuse.metrics.table import json_number
from taskfuse.models.weights import load_model, read_meta
from taskfuse.tasks.segmentation.task import Segmentation


def colorize(label: Tensor, image: Tensor, palette: Sequence[tuple[int, int, int]]) -> Tensor:
    """(3, H, W) in [0, 1]: each pixel in its class colour; ignored pixels (255) show ``image``."""
    label = label.cpu().long()
    colours = torch.tensor(palette, dtype=torch.float32) / 255.0
    valid = label < len(palette)
    out = colours[label.clamp(0, len(palette) - 1)].permute(2, 0, 1)
    return torch.where(valid, out, image.cpu().float().expand(3, -1, -1))


@DOWNSTREAM.register("segmentation")
class SegmentationTask(DownstreamTask, Segmentation):
    """Train and score a segmenter (``taskfuse.tasks.segmentation.Segmentation``) on one input: per-class IoU and
    mIoU over every class of the dataset, background included, as PSFusion's Table 2 does. ``direct`` names
    fusion weights whose own segmentation head is scored as extra rows (``direct_segmentation``)."""

    headline = "mIoU"
    summary = "train one segmenter per input (IR, VIS, fused) and compare per-class IoU / mIoU"
    description = (
        "The seeds' segmentation protocol: for each input train the same segmenter from the same seed on the train "
        "split (inputs normalised with their own training mean/std), score it on the test split, and write table.md "
        "(classes as columns, mIoU last, best bold, second _italic_), results.json, grid.png and one folder per "
        "input. A rerun skips finished inputs and resumes interrupted ones."
    )

    def __init__(
        self,
        classes: ClassSet,
        model: str = "segformer-b2",
        aux_weight: float = 0.4,
        pretrained: str | None = None,
        direct: Mapping[str, Path] | None = None,
        scored: Sequence[str | int] | None = None,
    ) -> None:
        super().__init__(classes, model, aux_weight, pretrained)
        self.scored = self.new_meter().compute(scored)["classes"]
        self.direct = dict(direct or {})
        missing = [str(w) for w in self.direct.values() if not Path(w).is_file()]
        if missing:
            raise TaskfuseError(f"--direct: no such weights file: {', '.join(missing)}")

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--segmenter", default="segformer-b2", help="segmentation network (default: segformer-b2)")
        parser.add_argument(
            "--pretrained",
            type=Path,
            metavar="FILE|imagenet",
            help="local .safetensors weights (the segmenter's or its encoder's) loaded into every fresh segmenter, "
            "or 'imagenet' for the fpn-effnet-lite segmenters",
        )
        parser.add_argument(
            "--classes",
            nargs="+",
            metavar="CLASS",
            help="average mIoU over these classes (names or label values) or a named subset: "
            + ", ".join(f"{k} ({' '.join(v)})" for k, v in CLASS_SUBSETS.items())
            + "; default: every class",
        )
        parser.add_argument(
            "--direct",
            type=name_and_path,
            nargs="+",
            action="extend",
            default=[],
            metavar="NAME=WEIGHTS",
            help="also score the segmentation head of these fusion weights (psfusion, mafs) as 'NAME (direct)' rows",
        )

    @classmethod
    def from_args(cls, args: argparse.Namespace, train: Any) -> SegmentationTask:
        direct = dict(args.direct)
        if len(direct) != len(args.direct):
            raise TaskfuseError("two --direct entries share a name; give each NAME=WEIGHTS a distinct NAME")
        clash = sorted(set(direct) & {s.name for s in parse_inputs(args.inputs)})
        if clash:
            raise TaskfuseError(f"--direct {clash[0]} also names an input; rename one of them")
        pretrained = None if args.pretrained is None else str(args.pretrained)
        return cls(
            train.classes, model=args.segmenter, pretrained=pretrained, direct=direct, scored=scored(args.classes)
        )

    def extra_rows(self, test: Dataset, out: Path, device: str, grid: int) -> dict[str, tuple[dict[str, Any], Path]]:
        rows = {}
        for name, weights in self.direct.items():
            folder = out / "direct" / name
            rows[f"{name} (direct)"] = direct_segmentation(weights, test, self, folder, device, grid), folder
        return rows

    def new_meter(self) -> SegmentationMetrics:
        return SegmentationMetrics(self.classes.num_classes, class_names=self.classes.names)

    def update(self, meter: SegmentationMetrics, preds: list[Tensor], batch: dict[str, Any]) -> None:
        meter.update(torch.stack(preds), batch["label"])

    def compute(self, meter: SegmentationMetrics) -> dict[str, Any]:
        """``iou`` and ``acc`` per class, ``mIoU`` and ``mean_acc`` over the scored ``classes``, ``pixel_acc``
        (fractions), ``classes``."""
        res = meter.compute(self.scored)
        return {
            "mIoU": json_number(res["miou"]),
            "iou": {c: json_number(v) for c, v in res["iou"].items()},
            "acc": {c: json_number(v) for c, v in res["acc"].items()},
            "mean_acc": json_number(res["mean_acc"]),
            "pixel_acc": json_number(res["pixel_acc"]),
            "classes": res["classes"],
        }

    def rescore(self, result: Mapping[str, Any]) -> dict[str, Any]:
        """A stored ``compute`` result with ``mIoU`` and ``mean_acc`` averaged over this task's classes."""
        return {
            **result,
            "mIoU": json_number(mean_over(result["iou"], self.scored)),
            "mean_acc": json_number(mean_over(result["acc"], self.scored)),
            "classes": list(self.scored),
        }

    def table(self, results: Mapping[str, Mapping[str, Any]]) -> str:
        """Per-class IoU and mIoU in percent, classes as columns, mIoU last (``iou_table``)."""

        def number(x: float | None) -> float:
            return math.nan if x is None else x

        rows = {
            name: {
                "iou": {c: number(v) for c, v in r["iou"].items()},
                "miou": number(r["mIoU"]),
                "classes": r["classes"],
            }
            for name, r in results.items()
        }
        return iou_table(rows)[0]

    def draw(self, image: Tensor, pred: Tensor, sample: dict[str, Any]) -> tuple[Tensor, Tensor]:
        palette = self.classes.palette
        return colorize(pred, image, palette), colorize(sample["label"], image, palette)


def scored(texts: Sequence[str] | None) -> list[str | int] | None:
    """``--classes``: a named subset of ``CLASS_SUBSETS``, or class names and label values; None for all."""
    if not texts:
        return None
    if len(texts) == 1 and texts[0].lower() in CLASS_SUBSETS:
        return list(CLASS_SUBSETS[texts[0].lower()])
    return [int(t) if t.isdigit() else t for t in texts]


def sample_names(dataset: Dataset) -> list[str]:
    """Sample names of ``dataset``: from a reader's records without decoding, else from its samples."""
    records = getattr(dataset, "records", None)
    if records is not None:
        return [r.name for r in records]
    return [dataset[i]["name"] for i in range(len(dataset))]  # type: ignore[arg-type]


def _weights_id(path: Path) -> dict[str, Any]:
    stat = os.stat(path)
    return {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


@torch.no_grad()
def direct_segmentation(
    weights: str | os.PathLike,
    test: Dataset,
    task: SegmentationTask,
    folder: Path,
    device: str = "auto",
    grid: int = 4,
    progress: bool = True,
) -> dict[str, Any]:
    """Score the segmentation head of the fusion model in ``weights`` on every test pair (``task.compute``).

    Writes ``folder/result.json`` and the drawn grid images (``folder/samples/``, the fused image as input);
    a rerun with the same weights file and test split reads the result back.
    """
    weights = Path(weights)
    method = read_meta(weights).get("method", "?")
    head = models.get(method).seg_head if method in models.METHODS else ""
    names = sample_names(test)
    record_path = folder / "result.json"
    ident = {"weights": _weights_id(weights), "test": names}
    shown = grid_indices(len(names), grid)
    needed = [folder / "samples" / f"{names[i]}_{k}.png" for i in shown for k in ("input", "pred", "gt")]
    if record_path.is_file():
        record = json.loads(record_path.read_text())
        if record.get("ident") == ident and all(p.is_file() for p in needed):
            return task.rescore(record["result"])
    dev = resolve_device(device)
    model = load_model(weights, dev)
    meter = task.new_meter()
    for i in tqdm(range(len(names)), desc=f"direct {method}", unit="img", disable=None if progress else True):
        sample = test[i]
        if "label" not in sample:
            raise TaskfuseError("--direct needs label masks and the test samples have none; use a labelled dataset")
        ir, vi = sample["ir"][None].to(dev), sample["vi"][None].to(dev)
        out = model(ir, vi)
        logits = out.aux.get(head) if head else None
        if logits is None:
            with_head = [n for n in models.names(learned=True) if models.get(n).seg_head]
            raise TaskfuseError(
                f"--direct {weights}: {method} has no segmentation head (its outputs: {', '.join(out.aux) or 'none'}); "
                f"--direct takes weights of methods with one ({', '.join(with_head)})"
            )
        if logits.shape[1] != task.classes.num_classes:
            raise TaskfuseError(
                f"--direct {weights}: {method} predicts {logits.shape[1]} classes but the dataset has "
                f"{task.classes.num_classes}; use weights trained on this label set"
            )
        pred = logits.argmax(dim=1)
        task.update(meter, list(pred), {"label": sample["label"][None].to(dev)})
        if i in shown:
            fused = out.fused.clamp(0, 1) if model.output_mode == "rgb" else recombine(out.fused, vi)
            image = fused[0].expand(3, -1, -1).cpu()
            drawn, truth = task.draw(image, pred[0].cpu(), sample)
            for kind, picture in (("input", image), ("pred", drawn), ("gt", truth)):
                write_image(folder / "samples" / f"{sample['name']}_{kind}.png", picture)
    result = task.compute(meter)
    with atomic_path(record_path) as tmp:
        tmp.write_text(json.dumps({"method": method, "ident": ident, "result": result}, indent=1) + "\n")
    return result

"""``taskfuse benchmark synthetic``: does task guidance raise downstream accuracy on labelled synthetic scenes?

The seeds' central claim is that a fusion network trained with a task loss in the loop gives images on which a
downstream network does better than on images fused without it, and better than on either modality. This
benchmark tests that claim end to end on the project's synthetic road scenes (night and day):

1. ``write_scenes(OUT/scenes, n_train, n_test, ...)`` renders the labelled train/test scenes (MSRS layout);
2. every learned method is trained twice on the training scenes, fusion-only and task-guided, with the same
   number of fusion-network steps (``taskfuse.benchmark.training``), into ``OUT/runs/``;
3. every trained network and every classical rule fuses both splits into ``OUT/fused/<row>/{train,test}/``;
4. the fusion metrics (EN SD SF AG MI SCD VIF Qabf SSIM) of every row are averaged over the test scenes;
5. the same downstream segmenter (and, optionally, detector) is trained from the same seed on every row's
   images by the protocol of ``taskfuse.evaluation`` and scored on the test scenes (``OUT/downstream/``);
6. every finished row is written to ``OUT/rows/<row>.json``, and the table (``taskfuse.benchmark.report``) is
   rebuilt from every row file present.

Rows are ``ir`` and ``vi`` (one modality), the classical rules of the scale, and ``<method>-fusion-only`` /
``<method>-task-guided`` for each learned method. Each stage skips what an earlier run finished, and runs with
disjoint rows may share one ``OUT`` at the same time, so a long run goes in pieces.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset, Subset

from taskfuse.benchmark.scales import Scale
from taskfuse.benchmark.training import VARIANTS, benchmark_methods, train_variant
from taskfuse.data.classes import MSRS, ClassSet
from taskfuse.data.io import atomic_path, read_ir, read_vi
from taskfuse.data.pairs import find_pairs
from taskfuse.data.synthetic import OBJECT_CLASSES, SyntheticScenes, write_scenes
from taskfuse.errors import TaskfuseError
from taskfuse.evaluation import DownstreamTask, ProtocolConfig, SegmentationTask, evaluate, parse_input
from taskfuse.evaluation.detection import DetectionTask
from taskfuse.inference import fuse_pairs, load, resolve_device
from taskfuse.metrics.fusion import DEFAULT_METRICS, FusionMetrics
from taskfuse.metrics.table import json_number
from taskfuse.train.schema import closest

OBJECTS = ClassSet(
    names=tuple(MSRS.names[c] for c in OBJECT_CLASSES), palette=tuple(MSRS.palette[c] for c in OBJECT_CLASSES)
)
"""The detector's classes: the scenes' object instances (car, person, bike, color_cone), numbered 0..3."""


@dataclass(frozen=True)
class Row:
    """One row of the table: its name (also its file and folder name), kind and method (or modality)."""

    name: str
    kind: str
    method: str


def all_rows(scale: Scale) -> list[Row]:
    """Every row of a scale, in table order."""
    rows = [Row("ir", "modality", "ir"), Row("vi", "modality", "vi")]
    rows += [Row(rule, "classical", rule) for rule in scale.classical]
    rows += [Row(f"{m}-{v}", v, m) for m in benchmark_methods() for v in VARIANTS]
    return rows


def select_rows(rows: Sequence[Row], names: Sequence[str] = (), variants: Sequence[str] = VARIANTS) -> list[Row]:
    """The rows named (a row name, or a learned method's name for both its variants; none = all), keeping
    only the learned rows of ``variants``; in table order."""
    for v in variants:
        if v not in VARIANTS:
            raise TaskfuseError(f"--variants {v!r}: choose from {', '.join(VARIANTS)}")
    known = [r.name for r in rows] + benchmark_methods()
    for n in names:
        if n not in known:
            raise TaskfuseError(f"--rows {n!r}: not a row of this scale{closest(n, known)} Rows: {', '.join(known)}")
    chosen = [r for r in rows if not names or r.name in names or r.method in names]
    return [r for r in chosen if r.kind not in VARIANTS or r.kind in variants]


@dataclass(frozen=True)
class Settings:
    """What an output folder was made with (``rows``: every row of the scale, in table order); a rerun with
    other settings is refused."""

    scale: str
    seed: int
    detection: bool
    rows: list[str]


def check_settings(out: Path, settings: Settings) -> None:
    """Record ``settings`` in ``out/benchmark.json``, or refuse if the folder holds another run's."""
    path = out / "benchmark.json"
    if path.is_file():
        stored, asked = json.loads(path.read_text()), asdict(settings)
        differ = [k for k in asked if stored.get(k) != asked[k]]
        if differ:
            was = ", ".join(f"{k} {stored.get(k)}" for k in differ if k != "rows") or "other rows"
            now = ", ".join(f"{k} {asked[k]}" for k in differ if k != "rows") or "these rows"
            raise TaskfuseError(f"{out} holds a benchmark made with {was}, not {now}; use another --out")
        return
    write_json(path, asdict(settings))


def write_json(path: Path, data: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1) + "\n")


class ObjectBoxes(Dataset):
    """The samples of ``dataset`` with the box classes renumbered from MSRS ids to ``OBJECTS`` indices."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset
        self.index = torch.full((max(OBJECT_CLASSES) + 1,), -1.0)
        self.index[list(OBJECT_CLASSES)] = torch.arange(len(OBJECT_CLASSES), dtype=torch.float32)

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> dict[str, Any]:
        sample = dict(self.dataset[i])
        boxes = sample["boxes"].clone()
        boxes[:, 0] = self.index[boxes[:, 0].long()]
        sample["boxes"] = boxes
        return sample


def splits(scale: Scale, seed: int) -> tuple[Dataset, Dataset]:
    """The benchmark's scenes as the downstream protocol's train and test sets (the scenes ``write_scenes``
    wrote: train = the first ``n_train``, test = the next ``n_test``)."""
    scenes = SyntheticScenes(scale.n_train + scale.n_test, seed, scale.height, scale.width)
    return Subset(scenes, range(scale.n_train)), Subset(scenes, range(scale.n_train, len(scenes)))


def fuse_splits(model: Any, scenes: Path, fused: Path, device: Any, progress: bool) -> float:
    """Fuse the train and test scenes into ``fused/{train,test}/``; returns the seconds taken (images already
    there are kept)."""
    start = time.perf_counter()
    for split in ("train", "test"):
        pairs = find_pairs(scenes / split / "ir", scenes / split / "vi")
        fuse_pairs(model, pairs, fused / split, progress=progress, device=resolve_device(device))
    return time.perf_counter() - start


def fusion_scores(row: Row, scenes: Path, fused: Path) -> dict[str, float | None]:
    """Fusion metrics averaged over the test scenes. The ``ir`` and ``vi`` rows score the source image itself
    as the fused one; SCD is then undefined (the correlation with an all-zero difference image) and None."""
    metrics = FusionMetrics(DEFAULT_METRICS)
    for pair in find_pairs(scenes / "test" / "ir", scenes / "test" / "vi"):
        sources = {"ir": read_ir(pair.ir), "vi": read_vi(pair.vi)}
        image = sources[row.name] if row.kind == "modality" else read_vi(fused / f"{pair.name}.png")
        metrics.update(image[None], sources["ir"][None], sources["vi"][None])
    return {k: json_number(v) for k, v in metrics.mean().items()}


@dataclass
class Downstream:
    """One downstream task of the benchmark with its protocol settings; ``boxes``: it reads the object boxes."""

    task: DownstreamTask
    settings: ProtocolConfig
    boxes: bool


def downstream_tasks(scale: Scale, seed: int, device: str, detection: bool) -> list[Downstream]:
    """The segmenter, and with ``detection`` the detector, with the scale's settings."""

    def settings(epochs: int, lr: float) -> ProtocolConfig:
        return ProtocolConfig(
            epochs=epochs,
            batch_size=scale.downstream_batch,
            lr=lr,
            crop=scale.downstream_crop,
            seed=seed,
            device=device,
            workers=scale.workers,
            grid=2,
        )

    tasks = [Downstream(SegmentationTask(MSRS, model=scale.segmenter), settings(scale.seg_epochs, scale.seg_lr), False)]
    if detection:
        detector = DetectionTask(OBJECTS, model=scale.detector)
        tasks.append(Downstream(detector, settings(scale.det_epochs, scale.det_lr), True))
    return tasks


def run_row(
    row: Row, scale: Scale, out: Path, seed: int, device: str, detection: bool, progress: bool
) -> dict[str, Any]:
    """Train (learned rows), fuse, score and run the downstream tasks for one row; its record. A finished
    downstream training's checkpoint is deleted (its ``result.json`` is what a rerun reads)."""
    scenes, fused = out / "scenes", out / "fused" / row.name
    record: dict[str, Any] = {"row": row.name, "kind": row.kind, "method": row.method, "scale": scale.name}
    if row.kind in VARIANTS:
        trained = train_variant(scale, row.method, row.kind, out, seed, device, progress)
        model = load(weights=trained.weights, device=device)
        record["fusion_train"] = {"seconds": trained.seconds, "steps": trained.steps, "resumed": trained.resumed}
    elif row.kind == "classical":
        model = load(row.method, device=device)
    else:
        model = None
    if model is not None:
        record["fuse_seconds"] = fuse_splits(model, scenes, fused, device, progress)
    record["fusion_metrics"] = fusion_scores(row, scenes, fused / "test")
    spec = parse_input(row.name if model is None else f"{row.name}={fused}")
    train, test = splits(scale, seed)
    for d in downstream_tasks(scale, seed, device, detection):
        folder = out / "downstream" / d.task.name / row.name
        data = (ObjectBoxes(train), ObjectBoxes(test)) if d.boxes else (train, test)
        start = time.perf_counter()
        result = evaluate(d.task, *data, [spec], folder, d.settings, progress)[row.name]
        record[d.task.name] = {
            "result": result,
            "seconds": time.perf_counter() - start,
            "train_seconds": json.loads((folder / row.name / "result.json").read_text())["train_seconds"],
            "model": d.task.model,
            "epochs": d.settings.epochs,
        }
        shutil.rmtree(folder / row.name / "checkpoint", ignore_errors=True)
    return record


def run(
    scale: Scale,
    out: Path,
    rows: Sequence[Row],
    seed: int = 0,
    device: str = "auto",
    detection: bool | None = None,
    progress: bool = True,
) -> list[Path]:
    """Run ``rows`` (skipping those whose ``OUT/rows/<row>.json`` exists); returns their row files."""
    detection = scale.detection if detection is None else detection
    out = Path(out)
    check_settings(out, Settings(scale.name, seed, detection, [r.name for r in all_rows(scale)]))
    write_scenes(out / "scenes", scale.n_train, scale.n_test, scale.height, scale.width, seed)
    paths = []
    for i, row in enumerate(rows, 1):
        path = out / "rows" / f"{row.name}.json"
        paths.append(path)
        if path.is_file():
            print(f"[{i}/{len(rows)}] {row.name}: done before, kept", file=sys.stderr)
            continue
        print(f"[{i}/{len(rows)}] {row.name} ({row.kind})", file=sys.stderr)
        start = time.perf_counter()
        record = run_row(row, scale, out, seed, device, detection, progress)
        record["seconds"] = time.perf_counter() - start
        write_json(path, record)
    return paths

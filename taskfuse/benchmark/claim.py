"""``taskfuse benchmark claim``: does a fusion network trained with a detector in the loop give images on which a
detector does better, on real labelled pairs (``msrs_det``)? The design is in docs/benchmark.md.

Rows, in table order: ``ir`` and ``vi`` (one modality); the classical rules of the preset; ``lite`` (the built-in
default); released weights given as ``NAME=WEIGHTS.safetensors`` (e.g. SeAFusion's and TarDAL's official
weights, converted); for every method that detection can guide (``continuation.claim_methods``) the variants
``fusion-only``, ``task-guided`` and ``reseed`` of the paired continuation (``taskfuse.benchmark.continuation``)
for every fusion seed; and ``oracle``: the infrared luminance inside the ground-truth boxes and the best fused
row (highest mean mAP50 once every other row is in) elsewhere, which bounds how much room fused inputs have.

Every row is judged by the same detector (``--detector``, default YOLOX-S from scratch) trained on that row's
images of the ``train`` split with that row's own normalisation (``taskfuse.evaluation``'s protocol), once per
downstream seed, and scored on ``val`` (mAP50, mAP50:95, per class, day and night). A trained detector is a
*cell*: a row has one per (fusion seed, downstream seed), or per downstream seed for rows without fusion seeds.
Each cell keeps its per-image predictions, so the report can resample the validation images.

The work is cut into units that each finish in minutes on a GPU and resume after a kill:

* ``pretrain:<method>:f<s>``: fusion seed ``s`` pre-trained to its plateau;
* ``train:<row>:f<s>``: one continuation variant, then its fused train and val images;
* ``fuse:<row>``: the images of a row without training (a classical rule, ``lite``, released weights, oracle);
* ``cell:<row>:<f>:d<d>``: one downstream detector (``<f>`` is ``f<s>``, or ``-`` for rows without fusion
  seeds) with its scores and predictions.

A unit runs the units it needs first; each holds a file lock while it works, so pieces may run side by side
into one output folder (``--plan`` lists the units whose inputs are ready, for ``scripts/claim_full.sh``).
``--reuse OTHER_OUT`` copies the cells of the IR, VIS and classical rows from another folder made with the same
data and downstream settings, and those of the default and released rows made with the same weights
(``reuse_cells``).

Output folder::

    OUT/claim.json                       the design (a rerun with other settings is refused)
    OUT/pretrain/<method>-f<s>.{safetensors,json}   plateau weights and the validation history
    OUT/runs/<method>-<variant>-f<s>[-<stamp>/ | .json]   continuation runs and their records
    OUT/fused/<row>/[f<s>/]{train,val}/  fused images (and done.json)
    OUT/downstream/<row>/[f<s>-]d<d>/    the protocol's output for one cell, predictions.json
    OUT/cells/<row>/[f<s>-]d<d>.json     one cell's scores
    OUT/rows/<row>.json, table.{md,json,csv}   the report (``taskfuse.benchmark.claim_report``)
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import shutil
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from safetensors.torch import load_model

from taskfuse import models
from taskfuse.benchmark.continuation import (
    VARIANTS,
    FusionDesign,
    claim_methods,
    continue_variant,
    pretrain,
)
from taskfuse.benchmark.stats import image_matches, scores_on
from taskfuse.data.classes import MSRS_DET
from taskfuse.data.color import luminance, recombine
from taskfuse.data.datasets import open_dataset
from taskfuse.data.datasets.msrs_det import MSRSDetDataset, condition
from taskfuse.data.io import atomic_path, read_ir, read_vi, write_image
from taskfuse.data.manifest import file_sha256
from taskfuse.data.pairs import find_pairs
from taskfuse.device import resolve_device
from taskfuse.errors import TaskfuseError
from taskfuse.evaluation import ProtocolConfig, evaluate, parse_input
from taskfuse.evaluation.detection import DetectionTask
from taskfuse.evaluation.inputs import InputSource, InputSpec
from taskfuse.evaluation.loop import test_input
from taskfuse.inference import fuse_pairs, load
from taskfuse.losses.masks import foreground_from_boxes
from taskfuse.train.schema import closest


@dataclass(frozen=True)
class ClaimScale:
    """One preset of the claim benchmark: the fusion trainings, the rows, the downstream detector, the seeds."""

    name: str
    fusion: FusionDesign
    """Pre-training and continuation lengths and sizes."""
    classical: tuple[str, ...]
    """Classical fusion rules tabulated as rows."""
    detector: str
    """Downstream detector (``taskfuse.tasks.detection`` name), trained from scratch."""
    det_epochs: int
    """Downstream detector epochs over the 239 training pairs."""
    det_lr: float
    """Its peak learning rate (AdamW, the protocol's schedule)."""
    det_batch: int
    """Its batch size."""
    det_crop: int | None
    """Its random training crop; None = whole images."""
    amp: bool
    """bfloat16 autocast of the downstream networks on CUDA."""
    fusion_seeds: tuple[int, ...]
    """Seeds of the fusion trainings (pre-training and continuation)."""
    downstream_seeds: tuple[int, ...]
    """Seeds of the downstream detectors."""
    draws: int
    """Bootstrap draws of the report."""
    workers: int
    """Data-loader processes of the downstream protocol."""
    pairing: str = "cross"
    """Cells of a row with fusion seeds: ``cross``, one per (fusion seed, downstream seed); ``paired``, the i-th
    fusion seed with the i-th downstream seed (as many cells as seeds, each network judged once)."""


TINY = ClaimScale(
    name="tiny",
    fusion=FusionDesign(
        batch_size=2,
        crop=64,
        check_every=2,
        min_steps=2,
        max_steps=4,
        patience=1,
        tolerance=0.01,
        plateau_metrics=("Qabf",),
        steps=2,
        rounds=1,
        task_model="yolox-nano",
        task_warmup=1,
        head_warmup=1,
        task_steps=1,
        task_lr_warmup=0,
        networks="small",
        checkpoint_every=1000,
        workers=0,
    ),
    classical=("max",),
    detector="yolox-nano",
    det_epochs=1,
    det_lr=1e-3,
    det_batch=2,
    det_crop=None,
    amp=False,
    fusion_seeds=(0, 1),
    downstream_seeds=(0, 1),
    draws=100,
    workers=0,
)
"""A pipeline check for the tests: a handful of tiny synthetic pairs, networks of a few thousand weights."""

CPU = ClaimScale(
    name="cpu",
    fusion=FusionDesign(
        batch_size=4,
        crop=128,
        check_every=20,
        min_steps=40,
        max_steps=80,
        patience=1,
        tolerance=0.01,
        plateau_metrics=("Qabf", "SSIM"),
        steps=20,
        rounds=2,
        task_model="yolox-nano",
        task_warmup=20,
        head_warmup=20,
        task_steps=10,
        task_lr_warmup=5,
        networks="small",
        checkpoint_every=20,
        workers=0,
        val_limit=8,
    ),
    classical=("max",),
    detector="yolox-nano",
    det_epochs=3,
    det_lr=2e-3,
    det_batch=8,
    det_crop=320,
    amp=False,
    fusion_seeds=(0,),
    downstream_seeds=(0,),
    draws=200,
    workers=0,
)
"""A smoke run on the real pairs on a CPU: narrowed networks, minutes of training, one seed; its numbers
check the pipeline and are no evidence."""

FULL = ClaimScale(
    name="full",
    fusion=FusionDesign(
        batch_size=16,
        crop=256,
        check_every=500,
        min_steps=2000,
        max_steps=10000,
        patience=2,
        tolerance=0.005,
        plateau_metrics=("Qabf", "SSIM"),
        steps=2000,
        rounds=4,
        task_model="yolox-s-effnet-lite0",
        task_warmup=2000,
        head_warmup=2000,
        task_steps=500,
        task_lr_warmup=200,
        networks="benchmark",
        checkpoint_every=250,
        workers=0,
    ),
    classical=("mean", "max", "laplacian", "gff"),
    detector="yolox-s-effnet-lite0",
    det_epochs=100,
    det_lr=1e-3,
    det_batch=16,
    det_crop=None,
    amp=True,
    fusion_seeds=(0, 1, 2),
    downstream_seeds=(0, 1, 2),
    draws=2000,
    workers=0,
)
"""The design on one H200, in pieces (``scripts/claim_full.sh``): the papers' networks, 3 x 3 seeds, a YOLOX-S on
EfficientNet-Lite0 in the loop and downstream (meant with ``--pretrained imagenet``: on the MSRS pairs, 30 epochs
from ImageNet weights reach 48 mAP50 on IR where the same detector from random weights reaches 26;
``docs/training.md``)."""

SESSION = ClaimScale(
    name="session",
    fusion=FusionDesign(
        batch_size=16,
        crop=256,
        check_every=250,
        min_steps=500,
        max_steps=1500,
        patience=1,
        tolerance=0.005,
        plateau_metrics=("Qabf", "SSIM"),
        steps=1000,
        rounds=2,
        task_model="yolox-s-effnet-lite0",
        task_warmup=600,
        head_warmup=600,
        task_steps=300,
        task_lr_warmup=100,
        networks="benchmark",
        checkpoint_every=250,
        workers=0,
    ),
    classical=("max",),
    detector="yolox-s-effnet-lite0",
    det_epochs=30,
    det_lr=1e-3,
    det_batch=16,
    det_crop=None,
    amp=True,
    fusion_seeds=(0, 1, 2),
    downstream_seeds=(0, 1, 2),
    draws=2000,
    workers=0,
    pairing="paired",
)
"""The design cut to fit GPU sessions of half an hour: networks started from ``--init`` (a fusion network
trained on more data) and pre-trained 500-1500 steps more, continuations of 1000 steps in two rounds, a YOLOX-S
on EfficientNet-Lite0 (ImageNet weights with ``--pretrained``) in the loop and downstream, 30 epochs, three
fusion seeds each judged by one downstream seed, three downstream seeds for rows without fusion seeds."""

SCALES: dict[str, ClaimScale] = {s.name: s for s in (TINY, CPU, SESSION, FULL)}


def get_scale(name: str) -> ClaimScale:
    if name not in SCALES:
        raise TaskfuseError(f"--scale {name!r}: not a preset{closest(name, list(SCALES))} Known: {', '.join(SCALES)}")
    return SCALES[name]


@dataclass(frozen=True)
class Row:
    """One row: its name (also its folder and file name), kind, and what makes its images (a modality, a rule,
    a method, a weights file; empty for the oracle, whose base is chosen when every other row is in)."""

    name: str
    kind: str
    source: str


FIXED = ("classical", "default", "released")
"""Kinds of rows whose images come without training."""


def all_rows(scale: ClaimScale, released: Mapping[str, str], methods: Sequence[str]) -> list[Row]:
    """Every row of a design, in table order."""
    rows = [Row("ir", "modality", "ir"), Row("vi", "modality", "vi")]
    rows += [Row(rule, "classical", rule) for rule in scale.classical]
    rows.append(Row(models.DEFAULT_METHOD, "default", models.DEFAULT_METHOD))
    rows += [Row(name, "released", path) for name, path in released.items()]
    rows += [Row(f"{m}-{v}", v, m) for m in methods for v in VARIANTS]
    rows.append(Row("oracle", "oracle", ""))
    taken = [r.name for r in rows if r.kind != "released"]
    clash = [name for name in released if name in taken]
    if clash:
        raise TaskfuseError(f"--weights {', '.join(clash)}: a row of that name exists; name released weights otherwise")
    return rows


def parse_released(texts: Sequence[str]) -> dict[str, str]:
    """``NAME=WEIGHTS.safetensors`` rows of released weights; the file must exist."""
    out: dict[str, str] = {}
    for text in texts:
        name, sep, path = text.partition("=")
        if not sep or not name or not path.endswith(".safetensors"):
            raise TaskfuseError(
                f"--weights {text!r}: write NAME=WEIGHTS.safetensors, e.g. seafusion-released=sf.safetensors"
            )
        if not Path(path).is_file():
            raise TaskfuseError(f"--weights {text!r}: {path} is not a file; leave the row out until the file exists")
        parse_input(f"{name}={Path(path).parent}")  # the row name must be one the protocol accepts
        out[name] = str(Path(path).resolve())
    return out


def parse_init(texts: Sequence[str] | None) -> dict[str, str] | None:
    """``METHOD=WEIGHTS.safetensors`` starting weights of a method's pre-trainings (the file may be made later,
    by a training running beside the benchmark; the pre-training refuses to start without it)."""
    if texts is None:
        return None
    out = {}
    for text in texts:
        method, sep, path = text.partition("=")
        if not sep or method not in claim_methods() or not path.endswith(".safetensors"):
            raise TaskfuseError(
                f"--init {text!r}: write METHOD=WEIGHTS.safetensors with a method of {', '.join(claim_methods())}"
            )
        out[method] = str(Path(path).resolve())
    return out


def pretrained_source(text: str) -> str:
    """``--pretrained``: ``imagenet``, or an existing weights file (stored absolute)."""
    if text == "imagenet":
        return text
    if not Path(text).is_file():
        raise TaskfuseError(f"--pretrained {text}: no such file; give imagenet or a .safetensors backbone file")
    return str(Path(text).resolve())


@dataclass(frozen=True)
class Design:
    """What an output folder is made of; ``released`` may grow between runs, nothing else may change."""

    root: str
    scale: str
    detector: str
    fusion_seeds: tuple[int, ...]
    downstream_seeds: tuple[int, ...]
    methods: tuple[str, ...]
    released: dict[str, str] = field(default_factory=dict)
    init: dict[str, str] = field(default_factory=dict)
    """Per method, the weights its pre-trainings start from (none: random weights)."""
    pretrained: str = ""
    """Backbone weights of every detector, in the loop and downstream (``imagenet`` or a file; empty: none)."""
    task_weight: float = 1.0
    """Scale of the task term's weight in SeAFusion's rounds (``FusionDesign.task_weight``)."""
    fast: bool = False
    """Fusion trainings in channels_last and compiled (``FusionDesign.fast``)."""
    head_warmup: int = 0
    """Steps of a task head's warm-up before its task-guided continuation (``FusionDesign.head_warmup``)."""


ABSENT = {"head_warmup": 0}
"""The settings a design recorded before its key existed was made with, where they differ from the preset's."""


def settle_design(out: Path, given: Mapping[str, Any]) -> Design:
    """The design of ``out``: the ``given`` settings (a None keeps the stored value, else the preset's, default
    preset ``cpu``; a key the stored design lacks reads as ``ABSENT`` says), refused when they differ from
    ``out/claim.json``, and recorded there with the rows."""
    path = out / "claim.json"
    stored: dict[str, Any] = json.loads(path.read_text())["design"] if path.is_file() else {}
    scale = get_scale(given.get("scale") or stored.get("scale") or "cpu")
    preset = {
        "root": None,
        "scale": scale.name,
        "detector": scale.detector,
        "fusion_seeds": list(scale.fusion_seeds),
        "downstream_seeds": list(scale.downstream_seeds),
        "methods": claim_methods(),
        "init": {},
        "pretrained": "",
        "task_weight": 1.0,
        "fast": False,
        "head_warmup": scale.fusion.head_warmup,
    }
    if stored:
        preset |= ABSENT
    values: dict[str, Any] = {}
    for key, default in preset.items():
        value = given.get(key)
        values[key] = stored.get(key, default) if value is None else list(value) if isinstance(value, tuple) else value
    if not values["root"]:
        raise TaskfuseError("--root: give the msrs_det folder (ir/, vi/, labels/), or --synthetic TRAIN VAL")
    values["root"] = str(Path(values["root"]).resolve())
    unknown = [m for m in values["methods"] if m not in claim_methods()]
    if unknown:
        raise TaskfuseError(f"--methods {', '.join(unknown)}: detection guides only {', '.join(claim_methods())}")
    released = {**stored.get("released", {}), **(given.get("released") or {})}
    earlier = {k: stored.get(k, preset[k]) for k in values} if stored else values
    changed = [f"{k} {earlier[k]}" for k in values if earlier[k] != values[k]]
    changed += [f"{k}={v}" for k, v in stored.get("released", {}).items() if released[k] != v]
    if changed:
        raise TaskfuseError(
            f"{out} holds a claim benchmark made with {', '.join(changed)}; use another --out for other settings"
        )
    design = Design(
        root=values["root"],
        scale=scale.name,
        detector=values["detector"],
        fusion_seeds=tuple(values["fusion_seeds"]),
        downstream_seeds=tuple(values["downstream_seeds"]),
        methods=tuple(values["methods"]),
        released=released,
        init=dict(values["init"]),
        pretrained=values["pretrained"],
        task_weight=float(values["task_weight"]),
        fast=bool(values["fast"]),
        head_warmup=int(values["head_warmup"]),
    )
    record = {
        "design": {**values, "released": released},
        "preset": asdict(scale),
        "rows": [asdict(r) for r in all_rows(scale, released, design.methods)],
    }
    out.mkdir(parents=True, exist_ok=True)
    write_json(path, record)
    return design


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` (created), held by this process until the block ends or it dies."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


REUSABLE = ("modality", "classical")
"""Kinds of rows whose cells depend on the data and the downstream settings alone, not on any weights."""

WEIGHED = ("default", "released")
"""Kinds of rows without training whose cells also depend on one weights file (``Claim.weights_sha256``)."""

CELL_SETTINGS = ("root", "scale", "detector", "downstream_seeds", "pretrained")
"""The design keys a cell of a ``REUSABLE`` or ``WEIGHED`` row depends on."""


def reuse_cells(out: Path, design: Design, source: Path) -> list[str]:
    """Copy into ``out`` the cells (scores and predictions) of ``source``, another claim folder, for the rows
    that ``design`` holds and ``out`` has not scored, when both designs agree on ``CELL_SETTINGS``: rows of kinds
    ``REUSABLE``, and rows of kinds ``WEIGHED`` whose cells were made with the same weights (the SHA-256 each cell
    records; for released weights scored before cells recorded it, the file their design names, if it is still
    there). A redesign (new ``--init``, methods or fusion seeds) need not train those detectors again. Returns
    the rows copied."""
    source = Path(source)
    if not (source / "claim.json").is_file():
        raise TaskfuseError(f"--reuse {source}: no claim.json there; give the output folder of a claim benchmark")
    theirs = json.loads((source / "claim.json").read_text())["design"]
    ours = json.loads(json.dumps(asdict(design)))
    differ = [k for k in CELL_SETTINGS if theirs.get(k) != ours[k]]
    if differ:
        raise TaskfuseError(
            f"--reuse {source}: made with other {', '.join(differ)} ({', '.join(str(theirs.get(k)) for k in differ)});"
            " its cells cannot stand for this design's"
        )
    claim, earlier = Claim(out, design), Claim(source, design)
    copied = []
    for row in claim.rows:
        cells = claim.cells(row)
        if not all(map(earlier.done, cells)) or all(map(claim.done, cells)):
            continue
        if row.kind not in REUSABLE and not (
            row.kind in WEIGHED and _same_weights(earlier, row, theirs.get("released", {}).get(row.name))
        ):
            continue
        for part in ("downstream", "cells"):
            if (source / part / row.name).is_dir():
                shutil.copytree(source / part / row.name, Path(out) / part / row.name, dirs_exist_ok=True)
        copied.append(row.name)
    return copied


def _same_weights(earlier: Claim, row: Row, their_path: str | None) -> bool:
    """Whether every cell ``earlier`` holds of ``row`` was made with the weights ``row`` names now."""
    made = {earlier.cell_record(row, f, d).get("weights_sha256") for f, d in earlier.cell_keys(row)}
    if None in made and their_path is not None and Path(their_path).is_file():
        made = (made - {None}) | {file_sha256(their_path)}
    return made == {earlier.weights_sha256(row)}


def tag(seed: int | None) -> str:
    """A fusion seed as written in unit and folder names: ``f<s>``, or ``-`` for rows without one."""
    return "-" if seed is None else f"f{seed}"


def cell_name(seed: int | None, dseed: int) -> str:
    """A cell's file and folder name: ``f<s>-d<d>``, or ``d<d>`` for rows without fusion seeds."""
    return f"d{dseed}" if seed is None else f"f{seed}-d{dseed}"


def write_json(path: Path, data: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1) + "\n")


class Claim:
    """One output folder's design, its units, and the work of each (module docstring)."""

    def __init__(self, out: Path, design: Design, device: str = "auto", progress: bool = True) -> None:
        self.out, self.design, self.device, self.progress = Path(out), design, device, progress
        self.scale = get_scale(design.scale)
        self.root = Path(design.root)
        self.rows = all_rows(self.scale, design.released, design.methods)
        self.by_name = {r.name: r for r in self.rows}

    # -- rows and units -----------------------------------------------------------------------------------

    def select(self, names: Sequence[str] = ()) -> list[Row]:
        """The rows named (a row, or a method for all its variants; none = all), in table order. A name that is
        a row is that row alone: ``lite`` is the shipped default's row, not the ``lite-*`` variants too."""
        known = [r.name for r in self.rows] + list(self.design.methods)
        for n in names:
            if n not in known:
                raise TaskfuseError(f"--rows {n!r}: not a row{closest(n, known)} Rows: {', '.join(known)}")
        methods = {n for n in names if n not in self.by_name}
        return [r for r in self.rows if not names or r.name in names or (r.source in methods and r.kind in VARIANTS)]

    def oracle_base(self) -> Row | None:
        """The oracle's base row: recorded in ``oracle.json`` once every other row's cells exist, else None."""
        path = self.out / "oracle.json"
        if path.is_file():
            return self.by_name[json.loads(path.read_text())["base"]]
        others = [r for r in self.rows if r.kind != "oracle"]
        if not all(self.done(u) for r in others for u in self.cells(r)):
            return None
        means = {
            r.name: float(np.mean([self.cell_record(r, f, d)["result"]["mAP50"] for f, d in self.cell_keys(r)]))
            for r in others
            if r.kind != "modality"
        }
        base = max(means, key=means.__getitem__)
        write_json(path, {"base": base, "mean_mAP50": means})
        return self.by_name[base]

    def seeds(self, row: Row) -> list[int | None]:
        """The fusion seeds of ``row`` ([None] for rows without; the oracle's are its base's)."""
        if row.kind in VARIANTS:
            return list(self.design.fusion_seeds)
        if row.kind == "oracle":
            base = self.oracle_base()
            return self.seeds(base) if base is not None else []
        return [None]

    def cell_keys(self, row: Row) -> list[tuple[int | None, int]]:
        seeds, downstream = self.seeds(row), self.design.downstream_seeds
        if self.scale.pairing == "paired" and seeds != [None]:
            return list(zip(seeds, downstream, strict=False))
        return [(f, d) for f in seeds for d in downstream]

    def fusion(self, method: str) -> FusionDesign:
        """The preset's fusion trainings of ``method``, with its starting weights, the detectors' backbone and the
        task weight."""
        return replace(
            self.scale.fusion,
            init=self.design.init.get(method, ""),
            task_pretrained=self.design.pretrained,
            task_weight=self.design.task_weight,
            fast=self.design.fast,
            head_warmup=self.design.head_warmup,
        )

    def cells(self, row: Row) -> list[str]:
        return [f"cell:{row.name}:{tag(f)}:d{d}" for f, d in self.cell_keys(row)]

    def units(self, rows: Sequence[Row]) -> list[str]:
        """The units that make ``rows``, in an order in which each one's inputs come first (with the oracle,
        the images of its base once that is known)."""
        learned = [r for r in rows if r.kind in VARIANTS]
        out = list(dict.fromkeys(f"pretrain:{r.source}:f{s}" for r in learned for s in self.design.fusion_seeds))
        out += [f"train:{r.name}:f{s}" for r in learned for s in self.design.fusion_seeds]
        out += [f"fuse:{r.name}" for r in rows if r.kind in FIXED]
        out += [u for r in rows if r.kind != "oracle" for u in self.cells(r)]
        if any(r.kind == "oracle" for r in rows):
            base = self.oracle_base()
            made = [] if base is None else [u for u in self.image_units(base) if u not in out]
            out += [*made, "fuse:oracle", *self.cells(self.by_name["oracle"])]
        return out

    def image_units(self, row: Row) -> list[str]:
        """The units that make the fused images of ``row``."""
        if row.kind in VARIANTS:
            return [f"train:{row.name}:f{s}" for s in self.design.fusion_seeds]
        return [f"fuse:{row.name}"]

    def needs(self, unit: str) -> list[str]:
        """The units ``unit`` needs finished first (the oracle: every other row's cells, then its base's
        images, so the images of rows scored earlier or in another folder are made again only for the base)."""
        kind, name, *rest = unit.split(":")
        row = self.by_name.get(name)
        if kind == "train":
            return [f"pretrain:{row.source}:{rest[0]}"]  # type: ignore[union-attr]
        if kind == "fuse" and name == "oracle":
            cells = [u for r in self.rows if r.kind != "oracle" for u in self.cells(r)]
            base = self.oracle_base()
            return cells if base is None else [*cells, *self.image_units(base)]
        if kind == "cell":
            assert row is not None
            if row.kind in VARIANTS:
                return [f"train:{name}:{rest[0]}"]
            if row.kind in (*FIXED, "oracle"):
                return [f"fuse:{name}"]
        return []

    def done(self, unit: str) -> bool:
        kind, name, *rest = unit.split(":")
        if kind == "pretrain":
            return (self.out / "pretrain" / f"{name}-{rest[0]}.json").is_file()
        if kind == "train":
            return (self.out / "fused" / name / rest[0] / "done.json").is_file()
        if kind == "fuse":
            return (self.out / "fused" / name / "done.json").is_file()
        if kind == "cell":
            seed = None if rest[0] == "-" else int(rest[0][1:])
            return (self.out / "cells" / name / f"{cell_name(seed, int(rest[1][1:]))}.json").is_file()
        raise TaskfuseError(f"unit {unit!r}: not a unit of this benchmark (see --plan)")

    def todo(self, rows: Sequence[Row]) -> list[str]:
        """Units of ``rows`` not done, less the images of rows whose cells are all scored (made earlier or
        copied by ``--reuse``), which are not made again unless the oracle among ``rows`` reads them."""
        base = self.oracle_base() if any(r.kind == "oracle" for r in rows) else None
        scored = {r.name for r in self.rows if r is not base and all(self.done(c) for c in self.cells(r))}
        return [
            u
            for u in self.units(rows)
            if not self.done(u) and not (u.startswith("fuse:") and u.split(":")[1] in scored)
        ]

    def plan(self, rows: Sequence[Row]) -> list[str]:
        """Units to do whose inputs are all done: what can run side by side now (a pre-training from ``--init``
        weights waits for the file)."""
        return [u for u in self.todo(rows) if all(self.done(n) for n in self.needs(u)) and self.startable(u)]

    def startable(self, unit: str) -> bool:
        """False for a pre-training whose ``--init`` weights do not exist yet."""
        kind, name, *_ = unit.split(":")
        init = self.design.init.get(name) if kind == "pretrain" else None
        return init is None or Path(init).is_file()

    def run_all(self, rows: Sequence[Row]) -> None:
        """Run every unit of ``rows``; listed again after each pass, since the oracle's cells are known only once
        its base is."""
        while todo := self.todo(rows):
            for unit in todo:
                self.run(unit)

    def run(self, unit: str) -> None:
        """Make ``unit`` done: its inputs first, then its own work under its lock (skipped if done)."""
        if self.done(unit):
            return
        if unit not in self.units(self.rows):
            raise TaskfuseError(f"unit {unit!r}: not a unit of this benchmark; --list shows them")
        for need in self.needs(unit):
            self.run(need)
        with locked(self.out / "locks" / f"{unit}.lock"):
            if self.done(unit):
                return
            print(f"{unit}", file=sys.stderr)
            kind, name, *rest = unit.split(":")
            if kind == "pretrain":
                seed = int(rest[0][1:])
                pretrain(self.fusion(name), name, seed, self.root, self.out, self.device, self.progress)
            elif kind == "train":
                self.train(self.by_name[name], int(rest[0][1:]))
            elif kind == "fuse":
                self.fuse(self.by_name[name])
            else:
                seed = None if rest[0] == "-" else int(rest[0][1:])
                self.cell(self.by_name[name], seed, int(rest[1][1:]))

    # -- the work -----------------------------------------------------------------------------------------

    def split(self, split: str, boxes: bool = True) -> MSRSDetDataset:
        return open_dataset("msrs_det", self.root, split, labels=boxes)  # type: ignore[return-value]

    def images(self, row: Row, seed: int | None) -> Path:
        """The folder of a row's fused images (``train/`` and ``val/`` inside)."""
        folder = self.out / "fused" / row.name
        return folder if seed is None else folder / f"f{seed}"

    def fuse_splits(self, model: Any, dest: Path) -> None:
        """Fuse the train and val pairs into ``dest/{train,val}`` (images already there are kept)."""
        start = time.perf_counter()
        pairs = {p.name: p for p in find_pairs(self.root / "ir", self.root / "vi", skip_unpaired=True)}
        for split in ("train", "val"):
            chosen = [pairs[r.name] for r in self.split(split, boxes=False).records]
            fuse_pairs(model, chosen, dest / split, progress=self.progress, device=resolve_device(self.device))
        write_json(dest / "done.json", {"seconds": time.perf_counter() - start})

    def train(self, row: Row, seed: int) -> None:
        fusion = self.fusion(row.source)
        trained = continue_variant(fusion, row.source, row.kind, seed, self.root, self.out, self.device, self.progress)
        self.fuse_splits(load(weights=trained.weights, device=self.device), self.images(row, seed))

    def fuse(self, row: Row) -> None:
        if row.kind == "oracle":
            base = self.oracle_base()
            assert base is not None
            for seed in self.seeds(base):
                self.compose_oracle(self.images(base, seed), self.images(row, seed))
            write_json(self.images(row, None) / "done.json", {"base": base.name})
            return
        if row.kind == "released":
            model = load(weights=row.source, device=self.device)
        else:
            model = load(row.source, device=self.device)
        self.fuse_splits(model, self.images(row, None))

    def compose_oracle(self, base: Path, dest: Path) -> None:
        """Oracle images: the infrared luminance inside the ground-truth boxes (edges feathered by a 2-pixel
        Gaussian), the base row's image elsewhere, its chroma kept."""
        for split in ("train", "val"):
            data = self.split(split)
            for rec in data.records:
                target = dest / split / f"{rec.name}.png"
                if target.exists():
                    continue
                image, ir = read_vi(base / split / f"{rec.name}.png"), read_ir(rec.ir)
                table = data.read_boxes(rec)
                assert table is not None
                h, w = ir.shape[-2:]
                mask = foreground_from_boxes(torch.from_numpy(table.boxes), h, w)[0].numpy()
                soft = torch.from_numpy(cv2.GaussianBlur(mask, (0, 0), 2.0))[None]
                y = soft * ir + (1 - soft) * luminance(image)
                write_image(target, recombine(y, image))
        write_json(dest / "done.json", {})

    def protocol(self, seed: int) -> ProtocolConfig:
        s = self.scale
        return ProtocolConfig(
            epochs=s.det_epochs,
            batch_size=s.det_batch,
            lr=s.det_lr,
            crop=s.det_crop,
            seed=seed,
            device=self.device,
            workers=s.workers,
            amp=s.amp,
            grid=2,
        )

    def weights_sha256(self, row: Row) -> str | None:
        """The SHA-256 of the weights a ``WEIGHED`` row fuses with (released weights, or the shipped default's);
        None for other rows."""
        if row.kind == "released":
            return file_sha256(row.source)
        shipped = models.get(row.source).weights if row.kind == "default" else None
        return None if shipped is None else file_sha256(shipped)

    def cell_record(self, row: Row, seed: int | None, dseed: int) -> dict[str, Any]:
        return json.loads((self.out / "cells" / row.name / f"{cell_name(seed, dseed)}.json").read_text())

    def cell(self, row: Row, seed: int | None, dseed: int) -> None:
        """Train, score and keep the predictions of one downstream detector (one cell)."""
        start = time.perf_counter()
        spec = parse_input(row.name if row.kind == "modality" else f"{row.name}={self.images(row, seed)}")
        task = DetectionTask(MSRS_DET, model=self.design.detector, pretrained=self.design.pretrained or None)
        folder = self.out / "downstream" / row.name / cell_name(seed, dseed)
        cfg = self.protocol(dseed)
        val = self.split("val")
        result = evaluate(task, self.split("train"), val, [spec], folder, cfg, self.progress)[row.name]
        preds = self.predict(task, spec, folder, val, cfg)
        names = [r.name for r in val.records]
        targets = [val.read_boxes(r).boxes for r in val.records]  # type: ignore[union-attr]
        matches = image_matches(preds, targets, MSRS_DET.num_classes, task.max_dets)
        conditions = {}
        for when in ("day", "night"):
            chosen = [i for i, n in enumerate(names) if condition(n) == when]
            if chosen:
                s = scores_on(matches, chosen)
                conditions[when] = {"mAP50": s.map50, "mAP": s.map, "images": len(chosen)}
        write_json(folder / "predictions.json", {"names": names, "predictions": [p.tolist() for p in preds]})
        stored = json.loads((folder / row.name / "result.json").read_text())
        record = {
            "row": row.name,
            "kind": row.kind,
            "fusion_seed": seed,
            "downstream_seed": dseed,
            "detector": task.model,
            "epochs": cfg.epochs,
            "result": result,
            "conditions": conditions,
            "predictions": str((folder / "predictions.json").relative_to(self.out)),
            "train_seconds": stored["train_seconds"],
            "seconds": time.perf_counter() - start,
        }
        if row.kind in WEIGHED:
            record["weights_sha256"] = self.weights_sha256(row)
        write_json(self.out / "cells" / row.name / f"{cell_name(seed, dseed)}.json", record)
        shutil.rmtree(folder / row.name / "checkpoint", ignore_errors=True)

    def predict(
        self, task: DetectionTask, spec: InputSpec, folder: Path, val: MSRSDetDataset, cfg: ProtocolConfig
    ) -> list[np.ndarray]:
        """Per validation image (N, 6) predictions of the cell's trained detector, made as the protocol's test
        makes them (8-bit input, the row's own mean and std)."""
        device = resolve_device(cfg.device)
        model = task.build(3)
        load_model(model, str(folder / spec.name / "checkpoint" / "model.safetensors"))
        model.to(device)
        stored = json.loads((folder / spec.name / "result.json").read_text())
        mean, std = torch.tensor(stored["mean"]), torch.tensor(stored["std"])
        source = InputSource(spec, "val", folder / "inputs", device)
        items = []
        for i in range(len(val)):
            sample = val[i]
            image = (source(sample).clamp(0, 1) * 255).round().to(torch.uint8)
            items.append({"ir": image, "boxes": sample["boxes"], "name": sample["name"]})
        _, kept = test_input(task, model, items, mean, std, cfg, device, range(len(items)), progress=self.progress)
        return [kept[i].numpy() for i in range(len(items))]

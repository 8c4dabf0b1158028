"""MAFS's training (seed 002, Sec. III-E and IV-A): masked-autoencoder pretext, then multi-task learning with
a teacher segmenter. Three phases, each with its own optimiser and schedule:

1. ``train.pretext`` (stage I; the paper's 100 epochs): ``MAFS.forward_pretext`` masks 32 x 32 patches of
   both inputs with a random ratio and the network reconstructs them; ``MAFSPretextLoss`` (eqs. 10-13,
   α1 = α2 = 5).
2. ``train.teacher_training``: the segmenter whose logits the student distils (eq. 19). The paper's teacher is
   a SegNeXt-L pre-trained on each dataset (Sec. IV-A2, Table XII); give such a segmenter as ``train.teacher``
   (a ``.safetensors`` file) and this phase is skipped. A file written by taskfuse (a run's
   ``teacher.safetensors``) names its segmenter and options, and that segmenter is built; a bare state dict is
   loaded into ``teacher_segmenter``. Without a file the engine trains the teacher here, from scratch, on images
   fused by the classical rule ``teacher_fusion`` (the MAFS network cannot fuse yet), with OHEM cross-entropy:
   a stand-in for the paper's pre-trained teacher, not the same thing.
3. ``train`` itself (stage II; the paper's 400 epochs): ``MAFSLoss`` (eqs. 14-21) with the frozen teacher;
   its α-fair dynamic weight average is checkpointed with the optimiser.

The paper trains both MAFS stages with SGD at lr 1e-3 and exponential decay on 256 x 256 crops with flips and
quarter turns, batch 4; ``train.pretext`` starts from the keys under ``train:``. When a phase begins, the
optimiser states of the finished ones are dropped (their memory freed, their checkpoints small).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch
from torch import Tensor

from taskfuse import models
from taskfuse.data.color import recombine
from taskfuse.errors import TaskfuseError
from taskfuse.models.base import FusionModel, FusionOutput
from taskfuse.models.spec import MethodSpec
from taskfuse.models.weights import read_meta
from taskfuse.tasks import segmentation
from taskfuse.tasks.segmentation.loss import main_aux_loss, ohem_cross_entropy
from taskfuse.train.config import DatasetConfig, PhaseConfig, RunConfig, StrategyOptions
from taskfuse.train.strategies.base import (
    STRATEGIES,
    Budget,
    Context,
    Strategy,
    as_float,
    check_task,
    logged,
    make_fusion,
    make_loss,
    require_annotations,
    seg_as_float,
)

TEACHER_AUX_WEIGHT = 0.4
"""Weight of a teacher's auxiliary logits, if it has any (mmseg's usual auxiliary-head weight)."""


def _pretext() -> PhaseConfig:
    return PhaseConfig(epochs=100)


def _teacher_training() -> PhaseConfig:
    return PhaseConfig(
        optimizer="adamw",
        lr=6e-5,
        weight_decay=0.01,
        lr_schedule="poly",
        poly_power=1.0,
        warmup_iters=1500,
        warmup_start_lr=1e-6,
        iters=20000,
    )


@dataclass
class MAFSOptions(StrategyOptions):
    task: str = "segmentation"
    """The annotations that guide training: MAFS's segmentation decoder and teacher learn from label masks only."""
    pretext: PhaseConfig = field(default_factory=_pretext)
    """Stage I, the masked-autoencoder pretext."""
    alpha1: float = 5.0
    """Intensity weight of the masked reconstruction loss (eq. 11)."""
    alpha2: float = 5.0
    """Gradient weight of the masked reconstruction loss (eqs. 12-13)."""
    teacher: str = ""
    """.safetensors weights of a trained teacher segmenter, used instead of training one in ``teacher_training``;
    empty = train one there."""
    teacher_segmenter: str = "segnext-l"
    """Teacher network (taskfuse.tasks.segmentation name; the paper's SegNeXt-L)."""
    teacher_args: dict[str, Any] = field(default_factory=dict)
    """Extra keyword arguments of the teacher."""
    teacher_fusion: str = "max"
    """Classical fusion rule (mean, max, laplacian, gff) making the teacher's training images."""
    teacher_training: PhaseConfig = field(default_factory=_teacher_training)
    """The teacher's phase (SegNeXt's recipe by default: AdamW 6e-5, warm-up 1500, poly power 1)."""


def teacher_network(o: MAFSOptions, num_classes: int) -> tuple[str, dict[str, Any]]:
    """The teacher's segmenter name and options: those stored in ``train.teacher`` when taskfuse wrote it (its
    class count must match the model's), else ``teacher_segmenter`` and ``teacher_args``."""
    if not o.teacher:
        return o.teacher_segmenter, dict(o.teacher_args)
    meta = read_meta(o.teacher)
    if meta.get("method") not in segmentation.names():
        return o.teacher_segmenter, dict(o.teacher_args)
    stored = dict(meta["config"])
    classes = stored.pop("num_classes", num_classes)
    if classes != num_classes:
        raise TaskfuseError(
            f"train.teacher {o.teacher}: a {meta['method']} for {classes} classes, but model.num_classes is "
            f"{num_classes}; give a teacher trained on this label set"
        )
    return meta["method"], stored


@STRATEGIES.register("mafs_two_stage")
class MAFSTwoStage(Strategy):
    name = "mafs_two_stage"
    Options = MAFSOptions

    @classmethod
    def budget(cls, budget: Budget, spec: MethodSpec) -> list[str]:
        """Stage I for ``pretext_steps`` and stage II for the rest of ``fusion_steps``; the teacher segmenter
        (not the fusion network) for ``teacher_steps``; ``budget.teacher`` empty keeps the config's teacher."""
        return [
            f"train.pretext.iters={budget.pretext_steps}",
            "train.pretext.epochs=0",
            f"train.iters={budget.fusion_steps - budget.pretext_steps}",
            "train.epochs=0",
            *([f"train.teacher_segmenter={budget.teacher}"] if budget.teacher else []),
            f"train.teacher_training.iters={budget.teacher_steps}",
            f"train.teacher_training.warmup_iters={budget.warmup}",
        ]

    @classmethod
    def check(cls, cfg: RunConfig) -> None:
        if "teacher" in cfg.loss:
            raise TaskfuseError("loss.teacher: the teacher is set by train.teacher (a .safetensors file)")
        check_task(cfg, cfg.options.task)

    @classmethod
    def phases(cls, cfg: RunConfig) -> dict[str, tuple[DatasetConfig, PhaseConfig]]:
        o: MAFSOptions = cfg.options
        return {
            "pretext": (cfg.data.train, o.pretext),
            "teacher": (cfg.data.train, o.teacher_training),
            "train": (cfg.data.train, cfg.train),
        }

    def __init__(self, cfg: RunConfig, ctx: Context) -> None:
        super().__init__(cfg, ctx)
        o: MAFSOptions = self.options
        self.net = make_fusion(cfg, ctx.device)
        if not hasattr(self.net, "forward_pretext"):
            raise TaskfuseError(f"mafs_two_stage needs a network with forward_pretext; {cfg.method!r} has none")
        num_classes = int(cfg.model.get("num_classes", 9))
        self.teacher_name, self.teacher_args = teacher_network(o, num_classes)
        self.teacher = segmentation.create(self.teacher_name, num_classes, 3, **self.teacher_args).to(ctx.device)
        if o.teacher:
            missing = segmentation.load_pretrained(self.teacher, o.teacher)
            if missing:
                raise TaskfuseError(
                    f"train.teacher {o.teacher}: {len(missing)} parameters of {self.teacher_name} are "
                    f"missing (e.g. {missing[:3]}); give a fully trained teacher or leave train.teacher empty"
                )
        self.teacher_fusion = models.create(o.teacher_fusion).to(ctx.device).eval()
        self.run = ctx.wrap(self.net, fixed=False)  # forward_pretext in stage I, forward in stage II
        self.run_teacher = ctx.wrap(self.teacher)
        self.make_teacher_images = ctx.frozen(self.teacher_fusion)
        teacher_opt = ctx.optimiser(self.teacher.parameters(), "teacher")
        self.pretext_loss = models.get(cfg.method).pretext_loss(o.alpha1, o.alpha2)
        self.loss = make_loss(cfg, teacher=self.teacher)
        self.loss.weighting.to(ctx.device)
        self.lengths = {
            "pretext": ctx.length("pretext"),
            "teacher": 0 if o.teacher else ctx.length("teacher"),
            "train": ctx.length("train"),
        }
        self.opts = {
            "pretext": ctx.optimiser(self.net.parameters(), "pretext"),
            "teacher": teacher_opt,
            "train": ctx.optimiser([*self.net.parameters(), *self.loss.weighting.parameters()], "train"),
        }
        self.teacher_criterion = partial(ohem_cross_entropy, thresh=0.7)

    def total_steps(self) -> int:
        return sum(self.lengths.values())

    def fusion_net(self) -> FusionModel:
        return self.net

    def networks(self) -> dict[str, tuple[Any, str, dict[str, Any]]]:
        num_classes = int(self.cfg.model.get("num_classes", 9))
        teacher_cfg = {"num_classes": num_classes, **self.teacher_args}
        return {**super().networks(), "teacher": (self.teacher, self.teacher_name, teacher_cfg)}

    def phase_at(self, step: int) -> str:
        return self.locate(step)[0]

    def locate(self, step: int) -> tuple[str, int]:
        """(phase, step within the phase) of global step ``step``."""
        for phase, length in self.lengths.items():
            if step < length:
                return phase, step
            step -= length
        raise IndexError(step)

    def train_step(self, step: int) -> dict[str, Tensor | float]:
        phase, t = self.locate(step)
        if t == 0:
            for done in list(self.opts)[: list(self.opts).index(phase)]:
                self.opts[done].reset()
        batch = self.ctx.batch(phase)
        if phase == "pretext":
            self.net.train()
            with self.ctx.autocast():
                out = self.run.call("forward_pretext", batch["ir"], batch["vi"])
            terms = self.pretext_loss(as_float(out), batch)
            return {**logged(terms), "lr": self.opts["pretext"].step(terms.total, t)}
        require_annotations(batch, "segmentation", "mafs_two_stage")
        if phase == "teacher":
            return self.teacher_step(t, batch)
        self.net.train()
        self.teacher.requires_grad_(False).eval()
        with self.ctx.autocast():
            out = self.run(batch["ir"], batch["vi"])
        terms = self.loss(as_float(out), batch)
        return {**logged(terms), "lr": self.opts["train"].step(terms.total, t)}

    def teacher_step(self, t: int, batch: dict[str, Any]) -> dict[str, Tensor | float]:
        with torch.no_grad():
            fused = self.make_teacher_images(batch["ir"], batch["vi"]).fused
            image = recombine(fused, batch["vi"]) if self.teacher_fusion.output_mode == "y" else fused
        self.teacher.requires_grad_(True).train()
        with self.ctx.autocast():
            out = seg_as_float(self.run_teacher(image))
        terms = main_aux_loss(out, batch["label"], TEACHER_AUX_WEIGHT, self.teacher_criterion)
        lr = self.opts["teacher"].step(terms.total, t)
        return {**logged(terms, "teacher/"), "lr_teacher": lr}

    def segment(self, out: FusionOutput, batch: dict[str, Any]) -> Tensor | None:
        return out.aux.get("seg")

    def state_dict(self) -> dict[str, Any]:
        return {
            "optimizers": {k: o.state_dict() for k, o in self.opts.items()},
            "weighting": self.loss.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k, o in self.opts.items():
            o.load_state_dict(state["optimizers"][k])
        self.loss.load_state_dict(state["weighting"])

"""SeAFusion's joint adaptive training (Tang et al. 2022; seed 000 Sec. 4 trains this way): rounds that
alternate the fusion network and a task network in the loop. Registered as ``iterative_joint`` and ``alternating``.

Round ``r`` of ``train.rounds`` (authors' ``train.py``: 4):

(a) ``train.fusion`` phase (``epochs`` per round, the code's 10): the fusion network learns
    ``L_fusion + λ_r L_task`` (seed 000 eq. 2) from the task network, frozen and in eval mode, applied to the
    fused luminance recombined with the visible chroma. ``λ_r`` is ``train.seg_weight_per_round[r]``; the code
    uses the round index, 0, 1, 2, 3, so round 0 trains on the fusion loss alone. The optimiser starts afresh
    every round (the code's new Adam, lr 1e-3 decayed by 0.75 per epoch).
(b) the task network's phase (``iters_per_round`` of its section, the code's 20000): the task network learns
    on images the current fusion network fuses on the fly (no gradient into it), its optimiser's momentum and
    schedule (over ``max_iters``) carried from round to round.

``train.task`` chooses the task network (seed 000 says the framework serves "semantic segmentation and object
detection"):

* ``segmentation``, the paper's: ``train.segmenter`` (BiSeNet) in phase ``train.segmentation``, with OHEM
  cross-entropy ``L_main + aux_weight L_aux`` (0.75 in its phase, as the code) and, in the fusion phase,
  ``L_seg = L_main + 0.1 L_aux`` (eq. 9, ``loss.aux_weight``) inside the method's loss;
* ``detection`` or ``keypoints``: the network ``train.task_model`` of that family (``taskfuse.tasks``) in phase
  ``train.detection`` / ``train.keypoints``, trained with the family's own loss; in the fusion phase that same
  loss of the frozen network on the fused image enters as ``λ_r L_task`` where ``L_seg`` does for segmentation.

A task network that starts random makes ``λ L_task`` noise. It can start warm: ``train.task_init`` loads its
weights (the ``segmenter`` / ``detector`` / ``keypoint_net`` file of an earlier run), and ``train.task_warmup``
trains it that many steps, before round 0, on images the starting fusion network fuses (with ``train.init``, a
fusion network trained earlier: the paired continuation of ``taskfuse benchmark claim``).

With every λ zero the rounds train the fusion network alone, with the same optimiser restarts, and no task network
is built: the fusion-only twin of a guided run.

The fused images are made on the fly rather than written to disk between phases (the code's ``run_fusion``):
the same images without the round trip through 8-bit files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import torch
from torch import Tensor

from taskfuse import tasks
from taskfuse.data.classes import ClassSet, spread_palette
from taskfuse.data.color import recombine
from taskfuse.errors import TaskfuseError
from taskfuse.losses.base import LossTerms
from taskfuse.models.base import FusionModel, FusionOutput
from taskfuse.models.spec import MethodSpec
from taskfuse.models.weights import load_weights, read_meta
from taskfuse.tasks import segmentation
from taskfuse.tasks.base import TaskFamily
from taskfuse.tasks.segmentation.loss import main_aux_loss, ohem_cross_entropy
from taskfuse.train.config import DatasetConfig, PhaseConfig, RunConfig, StrategyOptions
from taskfuse.train.strategies.base import (
    STRATEGIES,
    Budget,
    Context,
    Strategy,
    as_float,
    check_task,
    evaluating,
    logged,
    make_fusion,
    make_loss,
    require_annotations,
    seg_as_float,
)


def _fusion_phase() -> PhaseConfig:
    return PhaseConfig(
        optimizer="adam", lr=1e-3, lr_schedule="step", lr_decay=0.75, epochs=10, batch_size=16, crop="full"
    )


@dataclass
class TaskPhase(PhaseConfig):
    """The task network's phase: PhaseConfig plus its length per round."""

    iters_per_round: int = 20000
    """Task-network steps in each round."""
    max_iters: int = 0
    """Length of the task network's schedule: 0 = task_warmup + rounds x iters_per_round."""


@dataclass
class SegmentationPhase(TaskPhase):
    """The segmenter's phase, with its loss."""

    aux_weight: float = 0.75
    """Weight of the auxiliary logits in the segmenter's own loss."""
    ohem_thresh: float = 0.7
    """OHEM probability threshold of the segmenter's loss (at least 1/16 of the pixels are kept)."""


def _seg_phase() -> SegmentationPhase:
    return SegmentationPhase(
        optimizer="sgd",
        lr=1e-2,
        momentum=0.9,
        weight_decay=5e-4,
        lr_schedule="poly",
        poly_power=0.9,
        warmup_iters=1000,
        warmup_start_lr=1e-5,
        batch_size=16,
        crop="full",
    )


def _task_phase() -> TaskPhase:
    """The downstream protocol's optimiser (AdamW, poly decay), for detectors and keypoint networks."""
    return TaskPhase(optimizer="adamw", lr=1e-3, weight_decay=0.01, lr_schedule="poly", iters_per_round=2000)


NETWORK_FILES = {"segmentation": "segmenter", "detection": "detector", "keypoints": "keypoint_net"}
"""Name of the task network in checkpoints and of its exported ``<name>.safetensors``, by task."""


@dataclass
class IterativeJointOptions(StrategyOptions):
    rounds: int = 4
    """Rounds of (fusion phase, task phase)."""
    seg_weight_per_round: list[float] = field(default_factory=lambda: [0.0, 1.0, 2.0, 3.0])
    """λ of the task loss (the semantic loss for segmentation) in the fusion phase of each round (one per round)."""
    num_classes: int = 9
    """Classes of the task network (9 for MSRS, MFNet and the synthetic scenes; 3 for msrs_det boxes)."""
    task: str = "segmentation"
    """Task network in the loop: segmentation (``segmenter``), detection or keypoints (``task_model``)."""
    segmenter: str = "bisenet"
    """Segmenter (taskfuse.tasks.segmentation name)."""
    segmenter_args: dict[str, Any] = field(default_factory=dict)
    """Extra keyword arguments of the segmenter."""
    seg_pretrained: str = ""
    """Optional .safetensors weights the segmenter starts from (e.g. ImageNet ResNet-18)."""
    task_model: str = ""
    """Network of a detection or keypoints task (a name of that family's registry); empty = the family's default."""
    task_options: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of that task family (detection: box_loss, ...; keypoints: keypoint_names, input_size)."""
    task_init: str = ""
    """.safetensors weights of the whole task network to start from (the task network file of an earlier run)."""
    task_warmup: int = 0
    """Task-network steps before round 0, on images the starting fusion network fuses."""
    fusion: PhaseConfig = field(default_factory=_fusion_phase)
    """The fusion network's phase of every round."""
    segmentation: SegmentationPhase = field(default_factory=_seg_phase)
    """The segmenter's phase of every round (task segmentation)."""
    detection: TaskPhase = field(default_factory=_task_phase)
    """The detector's phase of every round (task detection)."""
    keypoints: TaskPhase = field(default_factory=_task_phase)
    """The keypoint network's phase of every round (task keypoints)."""


def task_family(o: IterativeJointOptions) -> TaskFamily:
    """The task family of a detection or keypoints task, with ``num_classes`` numbered classes."""
    classes = ClassSet(tuple(str(i) for i in range(o.num_classes)), spread_palette(o.num_classes))
    model = {"model": o.task_model} if o.task_model else {}
    try:
        return tasks.create(o.task, classes, **model, **o.task_options)
    except TypeError as e:
        raise TaskfuseError(f"train.task_options: {e}; give the keyword arguments of the {o.task} family") from e


def load_task_network(net: Any, path: str, name: str) -> None:
    """Load a whole task network saved by an earlier run (``train.task_init``), checking it is one of ``name``."""
    stored = read_meta(path).get("method")
    if stored != name:
        raise TaskfuseError(f"train.task_init {path} holds a {stored!r} network; this run's task network is {name!r}")
    try:
        net.load_state_dict(load_weights(path))
    except RuntimeError as e:
        raise TaskfuseError(f"train.task_init {path}: weights do not fit the {name} network ({e})") from e


@STRATEGIES.register("iterative_joint")
@STRATEGIES.register("alternating")
class IterativeJoint(Strategy):
    name = "iterative_joint"
    Options = IterativeJointOptions

    @classmethod
    def check(cls, cfg: RunConfig) -> None:
        o: IterativeJointOptions = cfg.options
        if o.rounds < 1 or len(o.seg_weight_per_round) != o.rounds:
            raise TaskfuseError(
                f"train.seg_weight_per_round has {len(o.seg_weight_per_round)} values for {o.rounds} rounds; "
                "give one λ per round"
            )
        check_task(cfg, o.task)
        phase = getattr(o, o.task, None)
        if not isinstance(phase, TaskPhase):
            raise TaskfuseError(f"train.task {o.task}: iterative_joint has no phase section for it")
        if phase.iters or phase.epochs:
            raise TaskfuseError(f"train.{o.task}: give its length per round as iters_per_round")
        if o.task_warmup < 0:
            raise TaskfuseError(f"train.task_warmup {o.task_warmup}: give a number of steps, 0 or more")
        if o.task != "segmentation":
            task_family(o)

    @classmethod
    def budget(cls, budget: Budget, spec: MethodSpec) -> list[str]:
        """``rounds`` rounds, each ``fusion_steps / rounds`` fusion steps with λ = ``budget.weights`` (default the
        round index, as the authors' ``train.py``) at a constant rate (the optimiser restarts every round), then
        ``task_steps`` steps of the task network, which first trains ``task_warmup`` steps."""
        r, phase = budget.rounds, budget.task
        weights = list(budget.weights) if budget.weights else list(range(r))
        out = [
            f"train.rounds={r}",
            f"train.seg_weight_per_round={weights}",
            f"train.task={phase}",
            f"train.task_warmup={budget.task_warmup}",
            f"train.fusion.iters={budget.fusion_steps // r}",
            "train.fusion.epochs=0",
            "train.fusion.lr_schedule=constant",
            *(f"train.fusion.{p}" for p in budget.phase),
            f"train.{phase}.iters_per_round={budget.task_steps}",
            f"train.{phase}.max_iters={budget.task_warmup + r * budget.task_steps}",
            f"train.{phase}.warmup_iters={budget.warmup}",
            *(f"train.{phase}.{p}" for p in budget.phase),
        ]
        if budget.task_model:
            out.append(f"train.task_model={budget.task_model}")
        if budget.task_pretrained:
            out.append(f"train.task_options.pretrained={json.dumps(budget.task_pretrained)}")
        return out

    @classmethod
    def without_task(cls, budget: Budget, spec: MethodSpec) -> list[str] | None:
        """The same rounds with λ = 0 in every one: the fusion network alone, with the same optimiser restarts."""
        return cls.budget(replace(budget, weights=(0.0,) * budget.rounds, task_warmup=0, task_pretrained=""), spec)

    @classmethod
    def fusion_phase(cls, cfg: RunConfig) -> PhaseConfig:
        return cfg.options.fusion

    @classmethod
    def phases(cls, cfg: RunConfig) -> dict[str, tuple[DatasetConfig, PhaseConfig]]:
        o: IterativeJointOptions = cfg.options
        return {"fusion": (cfg.data.train, o.fusion), o.task: (cfg.data.train, getattr(o, o.task))}

    def __init__(self, cfg: RunConfig, ctx: Context) -> None:
        super().__init__(cfg, ctx)
        o: IterativeJointOptions = self.options
        self.net = make_fusion(cfg, ctx.device)
        self.loss = make_loss(cfg)
        self.run_net = ctx.wrap(self.net)
        self.make_images = ctx.frozen(self.net)
        self.task = o.task
        settings: TaskPhase = getattr(o, o.task)
        self.guided = any(w > 0 for w in o.seg_weight_per_round)
        self.fusion_len = ctx.length("fusion")
        self.task_len = settings.iters_per_round if self.guided else 0
        self.warmup = o.task_warmup if self.guided else 0
        self.round_len = self.fusion_len + self.task_len
        self.opt = ctx.optimiser(self.net.parameters(), "fusion")
        self.family: TaskFamily | None = None
        self.task_net: Any = None
        if not self.guided:
            return
        if o.task == "segmentation":
            self.task_net = segmentation.create(o.segmenter, o.num_classes, 3, **o.segmenter_args).to(ctx.device)
            if o.seg_pretrained:
                segmentation.load_pretrained(self.task_net, o.seg_pretrained)
            self.seg_criterion = partial(ohem_cross_entropy, thresh=o.segmentation.ohem_thresh)
        else:
            self.family = task_family(o)
            self.task_net = self.family.build(3).to(ctx.device)
        if o.task_init:
            load_task_network(self.task_net, o.task_init, self.task_model_name())
        self.run_task = ctx.wrap(self.task_net)
        self.judge = ctx.frozen(self.task_net)
        total = settings.max_iters or self.warmup + o.rounds * settings.iters_per_round
        self.task_opt = ctx.optimiser(self.task_net.parameters(), o.task, total)

    def task_model_name(self) -> str:
        """The task network's registry name."""
        return self.options.segmenter if self.family is None else self.family.model

    def total_steps(self) -> int:
        return self.warmup + self.options.rounds * self.round_len

    def fusion_net(self) -> FusionModel:
        return self.net

    def networks(self) -> dict[str, tuple[Any, str, dict[str, Any]]]:
        nets = super().networks()
        if self.task_net is None:
            return nets
        o = self.options
        config = {"num_classes": o.num_classes, **(o.segmenter_args if self.family is None else o.task_options)}
        name = NETWORK_FILES.get(self.task, f"{self.task}_net")
        return {**nets, name: (self.task_net, self.task_model_name(), config)}

    def locate(self, step: int) -> tuple[int, str, int]:
        """(round, "fusion" or the task's phase, step within that phase) of global step ``step``; round -1 is the
        task network's warm-up."""
        if step < self.warmup:
            return -1, self.task, step
        r, inner = divmod(step - self.warmup, self.round_len)
        return (r, "fusion", inner) if inner < self.fusion_len else (r, self.task, inner - self.fusion_len)

    def phase_at(self, step: int) -> str:
        return self.locate(step)[1]

    def train_step(self, step: int) -> dict[str, Tensor | float]:
        r, phase, inner = self.locate(step)
        batch = self.ctx.batch(phase)
        if phase == "fusion":
            return {**self.fusion_step(r, inner, batch), "round": float(r)}
        t = inner if r < 0 else self.warmup + r * self.task_len + inner
        return {**self.task_step(t, batch), "round": float(r)}

    def fusion_step(self, r: int, inner: int, batch: dict[str, Any]) -> dict[str, Tensor | float]:
        weight = self.options.seg_weight_per_round[r]
        if inner == 0:
            self.opt.reset()
        self.net.train()
        if self.task_net is not None:
            self.task_net.requires_grad_(False)
        if weight > 0:
            require_annotations(batch, self.task, "iterative_joint")
        if self.family is None and self.guided:
            terms = self.segmentation_terms(batch, weight)
        else:
            with self.ctx.autocast(), evaluating(*self.frozen()):
                out = self.run_net(batch["ir"], batch["vi"])
                task_loss = (
                    self.family.loss(self.judge, recombine(out.fused, batch["vi"]), batch)
                    if self.family is not None and weight
                    else None
                )
            terms = self.loss(as_float(out), batch)
            if task_loss is not None:
                term = weight * task_loss.float()
                terms = LossTerms(terms.total + term, {**terms.parts, self.task: term.detach()})
        lr = self.opt.step(terms.total, inner)
        return {**logged(terms), "lr": lr}

    def frozen(self) -> list[Any]:
        """The task network, held in eval mode while the fusion network trains; none without the task."""
        return [] if self.task_net is None else [self.task_net]

    def segmentation_terms(self, batch: dict[str, Any], weight: float) -> LossTerms:
        """The method's loss with ``λ L_seg`` from the frozen segmenter (the paper's fusion phase)."""
        with self.ctx.autocast(), evaluating(*self.frozen()):
            out = self.run_net(batch["ir"], batch["vi"])
            seg_out = self.judge(recombine(out.fused, batch["vi"])) if weight > 0 else None
        self.loss.seg_weight = weight
        return self.loss(as_float(out), batch, None if seg_out is None else seg_as_float(seg_out))

    def task_step(self, t: int, batch: dict[str, Any]) -> dict[str, Tensor | float]:
        require_annotations(batch, self.task, "iterative_joint")
        self.task_net.requires_grad_(True)
        self.task_net.train()
        with torch.no_grad(), self.ctx.autocast(), evaluating(self.net):
            fused = recombine(self.make_images(batch["ir"], batch["vi"]).fused.float(), batch["vi"])
        if self.family is None:
            with self.ctx.autocast():
                out = seg_as_float(self.run_task(fused))
            seg = self.options.segmentation
            terms = main_aux_loss(out, batch["label"], seg.aux_weight, self.seg_criterion)
            prefix = "seg"
        else:
            with self.ctx.autocast():
                loss = self.family.loss(self.run_task, fused, batch).float()
            terms, prefix = LossTerms(loss), self.task
        lr = self.task_opt.step(terms.total, t)
        return {**logged(terms, f"{prefix}/"), f"lr_{prefix}": lr}

    def segment(self, out: FusionOutput, batch: dict[str, Any]) -> Tensor | None:
        if self.family is not None or self.task_net is None:
            return None
        with evaluating(self.task_net):
            return self.task_net(recombine(out.fused.float(), batch["vi"])).logits

    def state_dict(self) -> dict[str, Any]:
        state = {"optimizer": self.opt.state_dict()}
        if self.task_net is not None:
            state["task_optimizer"] = self.task_opt.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.opt.load_state_dict(state["optimizer"])
        if self.task_net is not None:
            self.task_opt.load_state_dict(state.get("task_optimizer") or state["seg_optimizer"])

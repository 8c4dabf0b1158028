"""The paired continuation: the fusion trainings of ``taskfuse benchmark claim`` (docs/benchmark.md).

A fusion network trained for a few hundred steps is far from converged, and a task term added to such a run
changes an image that is still changing fast for other reasons. So every fusion seed of a method is trained in
two steps on the ``train`` split of ``msrs_det``:

1. **Pre-training to a plateau** (``pretrain``): ``fusion_only`` (no boxes read), with the optimiser the method's
   task-guided run gives its fusion network at a constant learning rate, validated every ``check_every`` steps on
   the ``val`` images (fusion metrics only; the boxes are not read) until the plateau rule (``plateau_step``)
   fires or ``max_steps`` is reached.
2. **Continuation** (``continue_variant``): from that same checkpoint (``train.init``), ``steps`` more steps in
   each variant, with the same seed, data order, batch, crop and optimiser:

   * ``task-guided``: the method's own strategy with the boxes (``<method>_msrs_det``): SeAFusion's rounds with
     a detector in the loop, λ = 1, 2, ... (the paper's rounds after round 0, which the pre-training stands
     for), the detector first trained ``task_warmup`` steps on the starting network's images; FGFusion and
     DSIFuse with their box masks, FGFusion's foreground head first trained ``head_warmup`` steps alone on
     the boxes (``warm_head``: the box-free pre-training never trained it, and the rest of the network stays
     as it was, so the fused images at the start are the twins');
   * ``fusion-only``: the same training without the task term (``Strategy.without_task``: SeAFusion's rounds
     with λ = 0, so its optimiser restarts at the same steps; else ``fusion_only``), the boxes not read;
   * ``reseed``: ``fusion-only`` with another seed (``RESEED`` added), the control that measures how far two
     runs differing only in seed drift apart: the noise floor of the comparison.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from taskfuse import models
from taskfuse.benchmark.training import Trained, finished, switch_to_fusion_only, train_recorded, value
from taskfuse.data.io import atomic_path
from taskfuse.errors import TaskfuseError
from taskfuse.metrics.fusion import metric_info
from taskfuse.train.config import RunConfig
from taskfuse.train.log import read_metrics
from taskfuse.train.resolve import CONFIG_DIR, load_config
from taskfuse.train.state import CHECKPOINTS, latest_checkpoint
from taskfuse.train.strategies import STRATEGIES
from taskfuse.train.strategies.base import Budget

VARIANTS = ("fusion-only", "task-guided", "reseed")
RESEED = 1000
"""Added to the fusion seed of the ``reseed`` control."""


@dataclass(frozen=True)
class FusionDesign:
    """Lengths and sizes of the fusion trainings of one preset."""

    batch_size: int
    """Images per step, every phase."""
    crop: int
    """Random square crop, every phase (the detector in the loop learns from the boxes inside it)."""
    check_every: int
    """Pre-training steps between two validations (plateau checks)."""
    min_steps: int
    """No plateau is declared before this step."""
    max_steps: int
    """Pre-training stops here even without a plateau (the record then says so)."""
    patience: int
    """Consecutive checks without improvement that make a plateau."""
    tolerance: float
    """Relative gain over the best earlier value that counts as an improvement."""
    plateau_metrics: tuple[str, ...]
    """Fusion metrics watched (``taskfuse.metrics.fusion`` names, each in its own direction)."""
    steps: int
    """Continuation steps of the fusion network in every variant."""
    rounds: int
    """SeAFusion rounds of the continuation (λ = 1 .. rounds); ``steps`` is split evenly over them."""
    task_model: str
    """The detector in the loop (``taskfuse.tasks.detection`` name)."""
    task_warmup: int
    """Detector steps on the starting network's images before the first round."""
    task_steps: int
    """Detector steps per round."""
    task_lr_warmup: int
    """Learning-rate warm-up steps of the detector's phase."""
    networks: Literal["small", "benchmark"]
    """Network sizes: each spec's ``small`` (CPU) or ``benchmark`` (the paper's) overrides."""
    checkpoint_every: int
    """Steps between resumable checkpoints."""
    workers: int
    """Data-loader processes."""
    val_limit: int = 0
    """Validate on the first N val pairs only (0 = all)."""
    init: str = ""
    """Weights the pre-training starts from (e.g. a network trained on more data); empty: random weights."""
    task_pretrained: str = ""
    """Backbone weights of the detector in the loop (``imagenet`` or a ``.safetensors`` file); empty: random."""
    task_weight: float = 1.0
    """Scale of SeAFusion's λ: round r of the continuation weighs the task term ``task_weight * r`` (1: the
    paper's round index, seed 000 eq. 2)."""
    fast: bool = False
    """Every fusion training in channels_last and under ``torch.compile`` (``train.channels_last``,
    ``train.compile``): the same steps on a faster kernel path (FGFusion 2.73x on one H200,
    ``docs/training.md``), for GPU runs too short for the eager path."""
    head_warmup: int = 0
    """Steps that train a method's task head (``MethodSpec.task_head``) alone on the boxes, from the pre-trained
    network, before its task-guided continuation; 0: none (the head enters the continuation untrained)."""


def claim_methods() -> list[str]:
    """Learned methods that detection can guide (``MethodSpec.tasks``) and that ship a ``<config>_msrs_det``."""
    return [
        n
        for n in models.names(learned=True)
        if "detection" in models.get(n).tasks and (CONFIG_DIR / f"{models.get(n).config}_msrs_det.yaml").is_file()
    ]


def config_name(method: str) -> str:
    return f"{models.get(method).config}_msrs_det"


def budget(design: FusionDesign) -> Budget:
    """The continuation's budget, λ = ``task_weight`` x (1 .. rounds)."""
    return Budget(
        fusion_steps=design.steps,
        batch_size=design.batch_size,
        crop=design.crop,
        rounds=design.rounds,
        task_steps=design.task_steps,
        warmup=design.task_lr_warmup,
        task="detection",
        task_model=design.task_model,
        task_warmup=design.task_warmup,
        task_pretrained=design.task_pretrained,
        weights=tuple(design.task_weight * r for r in range(1, design.rounds + 1)),
    )


def common(design: FusionDesign, method: str, root: Path, seed: int, boxes: bool, progress: bool) -> list[str]:
    """Data, seed, constant learning rate, logging and network size shared by every training."""
    spec = models.get(method)
    sizes = spec.small if design.networks == "small" else spec.benchmark
    out = [
        "data.train=null",
        "data.train.name=msrs_det",
        f"data.train.root={value(str(root))}",
        "data.train.split=train",
        "train.dataset=msrs_det",
        "data.val=null",
        f"data.workers={design.workers}",
        "data.cache=true",
        f"train.seed={seed}",
        f"train.batch_size={design.batch_size}",
        f"train.crop={design.crop}",
        "train.lr_schedule=constant",
        "train.warmup_iters=0",
        "log.best=null",
        f"log.progress={value(progress)}",
        "log.tensorboard=false",
        f"log.checkpoint_every={design.checkpoint_every}",
        *(f"model.{k}={value(v)}" for k, v in sizes.items()),
    ]
    if design.fast:
        out += ["train.channels_last=true", "train.compile=true"]
    if not boxes:
        out.append("data.train.options.labels=false")
    return out


def guided_config(
    design: FusionDesign, method: str, root: Path, seed: int, init: str, progress: bool, extra: Sequence[str] = ()
) -> RunConfig:
    """The task-guided continuation (the strategy's budget gives the detectors' backbone to a task network in the
    loop; the methods whose boxes make masks have none), with ``extra`` overrides last."""
    spec = models.get(method)
    overrides = [
        *common(design, method, root, seed, True, progress),
        *STRATEGIES.get(spec.strategy).budget(budget(design), spec),
        f"train.init={value(init)}",
        *extra,
    ]
    return load_config(config_name(method), overrides)


def plain_config(design: FusionDesign, method: str, root: Path, seed: int, init: str, progress: bool) -> RunConfig:
    """The fusion-only twin of ``guided_config`` (``Strategy.without_task``, else ``fusion_only``)."""
    spec = models.get(method)
    twin = STRATEGIES.get(spec.strategy).without_task(budget(design), spec)
    if twin is None:
        guided = guided_config(design, method, root, seed, init, progress)
        twin = [*switch_to_fusion_only(config_name(method), guided), f"train.iters={design.steps}", "train.epochs=0"]
    overrides = [*common(design, method, root, seed, False, progress), *twin, f"train.init={value(init)}"]
    return load_config(config_name(method), overrides)


def pretrain_config(design: FusionDesign, method: str, root: Path, seed: int, iters: int, progress: bool) -> RunConfig:
    """``fusion_only`` for ``iters`` steps with the guided run's fusion optimiser, validated every
    ``check_every`` steps on the val images (no boxes read)."""
    guided = guided_config(design, method, root, seed, "", progress)
    val = {
        "name": "msrs_det",
        "root": str(root),
        "split": "val",
        "limit": design.val_limit,
        "options": {"labels": False},
    }
    overrides = [
        *common(design, method, root, seed, False, progress),
        *switch_to_fusion_only(config_name(method), guided),
        "train.lr_schedule=constant",
        "train.warmup_iters=0",
        f"train.iters={iters}",
        "train.epochs=0",
        f"train.init={value(design.init) if design.init else 'null'}",
        f"data.val={value(val)}",
        f"log.val_every={design.check_every}",
        f"log.metrics={value(list(design.plateau_metrics))}",
    ]
    return load_config(config_name(method), overrides)


def plateau_step(
    history: dict[int, dict[str, float]], metrics: tuple[str, ...], patience: int, tolerance: float, min_steps: int
) -> int | None:
    """The plateau rule: the first validated step, at or after ``min_steps``, that ends ``patience`` consecutive
    checks in none of which any of ``metrics`` beat its best earlier value by more than ``tolerance`` of that
    value (in the metric's own direction); None when training has not plateaued.

    >>> h = {100: {"Qabf": 0.40}, 200: {"Qabf": 0.45}, 300: {"Qabf": 0.451}, 400: {"Qabf": 0.449}}
    >>> plateau_step(h, ("Qabf",), patience=2, tolerance=0.01, min_steps=0)
    400
    """
    best: dict[str, float] = {}
    stale = 0
    for step in sorted(history):
        improved = False
        for m in metrics:
            v = history[step][m]
            sign = 1.0 if metric_info(m).higher_is_better else -1.0
            if m not in best or sign * (v - best[m]) > tolerance * abs(best[m]):
                improved = True
            if m not in best or sign * (v - best[m]) > 0:
                best[m] = v
        stale = 0 if improved else stale + 1
        if stale >= patience and step >= min_steps:
            return step
    return None


def validation_history(run_dir: Path, metrics: tuple[str, ...], upto: int) -> dict[int, dict[str, float]]:
    """Validation scores by step from a run's ``metrics.csv``, up to step ``upto``."""
    logged = read_metrics(run_dir / "metrics.csv") if (run_dir / "metrics.csv").is_file() else {}
    steps = set.intersection(*(set(logged.get(f"val/{m}", {})) for m in metrics))
    return {s: {m: logged[f"val/{m}"][s] for m in metrics} for s in sorted(steps) if s <= upto}


def pretrain(design: FusionDesign, method: str, seed: int, root: Path, out: Path, device: str, progress: bool) -> Path:
    """Pre-train fusion seed ``seed`` of ``method`` to its plateau (module docstring); the weights file.

    Runs in ``out/pretrain/<method>-f<seed>-<stamp>``, extended ``check_every`` steps at a time (a resumed run
    continues exactly). The finished pre-training leaves ``out/pretrain/<method>-f<seed>.safetensors`` and a
    record ``.json`` beside it (steps, whether it plateaued, every validation) and its checkpoints are deleted.
    """
    from taskfuse.train.loop import train

    name = f"{method}-f{seed}"
    folder = out / "pretrain"
    weights, record = folder / f"{name}.safetensors", folder / f"{name}.json"
    if record.is_file():
        return weights
    start = time.perf_counter()
    while True:
        runs = sorted(d for d in folder.glob(f"{name}-*") if d.is_dir() and latest_checkpoint(d) is not None)
        run_dir = runs[-1] if runs else None
        done = int(latest_checkpoint(run_dir).name.split("_")[-1]) if run_dir else 0
        history = validation_history(run_dir, design.plateau_metrics, done) if run_dir else {}
        rule = (design.plateau_metrics, design.patience, design.tolerance, design.min_steps)
        stop = plateau_step(history, *rule) if history else None
        if run_dir is not None and (done >= design.max_steps or (done % design.check_every == 0 and stop is not None)):
            break
        target = min(design.max_steps, (done // design.check_every + 1) * design.check_every)
        cfg = pretrain_config(design, method, root, seed, target, progress)
        train(cfg, folder, resume=run_dir, device=device, name=name)
    assert run_dir is not None
    with atomic_path(weights) as tmp:
        shutil.copyfile(run_dir / "fusion.safetensors", tmp)
    summary = {
        "weights": weights.name,
        "steps": done,
        "plateau": stop,
        "history": {str(k): v for k, v in history.items()},
        "seconds_last_session": time.perf_counter() - start,
        "run": str(run_dir.relative_to(out)),
    }
    with atomic_path(record) as tmp:
        tmp.write_text(json.dumps(summary, indent=1) + "\n")
    shutil.rmtree(run_dir / CHECKPOINTS, ignore_errors=True)
    return weights


def variant_config(
    design: FusionDesign, method: str, variant: str, seed: int, root: Path, init: Path, progress: bool = True
) -> RunConfig:
    """The continuation of one variant from the pre-trained weights ``init``."""
    if variant not in VARIANTS:
        raise TaskfuseError(f"variant {variant!r}: choose from {', '.join(VARIANTS)}")
    if variant == "task-guided":
        return guided_config(design, method, root, seed, str(init), progress)
    return plain_config(design, method, root, seed + RESEED if variant == "reseed" else seed, str(init), progress)


def continue_variant(
    design: FusionDesign, method: str, variant: str, seed: int, root: Path, out: Path, device: str, progress: bool
) -> Trained:
    """Train one variant of fusion seed ``seed`` from its pre-trained weights into ``out/runs/`` (resumed and
    recorded as ``taskfuse.benchmark.training.train_recorded`` does)."""
    name = f"{method}-{variant}-f{seed}"
    if (out / "runs" / f"{name}.json").is_file():
        return finished(out, name)
    init = pretrain(design, method, seed, root, out, device, progress)
    if variant == "task-guided":
        init = warm_head(design, method, seed, root, out, device, progress, init)
    return train_recorded(variant_config(design, method, variant, seed, root, init, progress), out, name, device)


def warm_head(
    design: FusionDesign, method: str, seed: int, root: Path, out: Path, device: str, progress: bool, init: Path
) -> Path:
    """The pre-trained weights ``init`` with the method's task head (``MethodSpec.task_head``) trained
    ``head_warmup`` steps alone with the task-guided loss and data (``train.train_only``: every other module
    frozen, in eval mode), recorded as ``out/runs/<method>-head-f<seed>``; ``init`` itself for a method without
    such a head or a design without the warm-up. The fusion path is untouched, so the task-guided continuation
    starts from the fused images of its fusion-only twin, with a head that has learnt the boxes as SeAFusion's
    detector has before its first round."""
    head = models.get(method).task_head
    if not head or design.head_warmup <= 0:
        return init
    name = f"{method}-head-f{seed}"
    if (out / "runs" / f"{name}.json").is_file():
        return finished(out, name).weights
    steps = [f"train.iters={design.head_warmup}", "train.epochs=0", f"train.train_only={value(list(head))}"]
    cfg = guided_config(design, method, root, seed, str(init), progress, steps)
    return train_recorded(cfg, out, name, device).weights

"""The two trainings of every learned method in the benchmark: task-guided (its own strategy, with labels) and
fusion-only (``train.strategy=fusion_only`` on the same images without labels).

Both variants start from the shipped ``<method>_synthetic`` config and read the benchmark's training scenes
from the files ``write_scenes`` made (``msrs`` layout), so they see the same pixels; the fusion-only run opens
them with ``labels: false``. Reading files rather than rendering scenes matters: rendered scenes carry boxes,
and FGFusion's and DSIFuse's losses turn boxes into foreground masks, which would give the fusion-only variant
task supervision through the back door.

Both variants take the same number of fusion-network steps (``Scale.fusion_steps``), batch size and crop, and
the fusion-only run copies the optimiser, schedule and warm-up that the task-guided run gives its fusion network.
How each strategy spends the budget is its ``budget`` method (``taskfuse.train.strategies``): SeAFusion's
``iterative_joint`` splits the fusion steps into rounds with segmenter steps between them, at a constant rate
(its optimiser restarts every round); MAFS's ``mafs_two_stage`` runs stage I for ``pretext_steps`` and trains its
teacher segmenter besides; ``single_stage`` (PSFusion, FGFusion, DSIFuse) runs ``fusion_steps`` steps of the
objective with or without its semantic terms.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from taskfuse import models
from taskfuse.benchmark.scales import Scale
from taskfuse.data.io import atomic_path
from taskfuse.errors import TaskfuseError
from taskfuse.train.config import RunConfig, TrainConfig, plain
from taskfuse.train.resolve import load_config, read_tree, resolve_source, shipped_configs
from taskfuse.train.state import CHECKPOINTS, latest_checkpoint
from taskfuse.train.strategies import STRATEGIES
from taskfuse.train.strategies.base import Budget
from taskfuse.train.strategies.fusion_only import FusionOnlyOptions


def benchmark_methods() -> list[str]:
    """The learned methods with a task in the loop and a synthetic-scenes recipe (``<config>_synthetic``), in
    registry order: the seeds' methods, compared fusion-only against task-guided."""
    return [
        n
        for n in models.names(learned=True)
        if STRATEGIES.get(models.get(n).strategy).task_guided
        and f"{models.get(n).config}_synthetic" in shipped_configs()
    ]


VARIANTS = ("fusion-only", "task-guided")


@dataclass
class Trained:
    """A finished training: its weights and the wall time of the session that finished it (``resumed``: an
    earlier, interrupted session's time is not included)."""

    weights: Path
    seconds: float
    steps: int
    resumed: bool


def value(x: object) -> str:
    """An override value: JSON is YAML, so strings with any characters (paths) survive ``--set`` parsing."""
    return json.dumps(x)


def common_overrides(scale: Scale, method: str, scenes: Path, seed: int, labels: bool, progress: bool) -> list[str]:
    """Data, seed, logging and network size shared by both variants."""
    out = [
        "data.train=null",
        "data.train.name=msrs",
        f"data.train.root={value(str(scenes))}",
        "data.train.split=train",
        "train.dataset=msrs",
        "data.val=null",
        f"data.workers={scale.workers}",
        "data.cache=true",
        f"train.seed={seed}",
        f"train.batch_size={scale.batch_size}",
        f"train.crop={scale.crop}",
        "log.best=null",
        f"log.progress={value(progress)}",
        "log.tensorboard=false",
        f"log.checkpoint_every={scale.checkpoint_every}",
    ]
    if not labels:
        out.append("data.train.options.labels=false")
    out += [f"model.{k}={value(v)}" for k, v in scale.network(models.get(method)).items()]
    return out


def budget(scale: Scale) -> Budget:
    return Budget(
        fusion_steps=scale.fusion_steps,
        batch_size=scale.batch_size,
        crop=scale.crop,
        rounds=scale.rounds,
        task_steps=scale.segmenter_steps,
        pretext_steps=scale.pretext_steps,
        teacher_steps=scale.teacher_steps,
        teacher=scale.teacher,
        warmup=scale.warmup,
    )


def task_guided_overrides(scale: Scale, method: str) -> list[str]:
    """The method's own strategy on the scale's budget; a recipe that warms up (PSFusion: 1000 of its ~170k
    steps) warms up for ``scale.warmup`` steps."""
    spec = models.get(method)
    out = STRATEGIES.get(spec.strategy).budget(budget(scale), spec)
    if (read_tree(resolve_source(synthetic_config(method))).get("train") or {}).get("warmup_iters"):
        out.append(f"train.warmup_iters={scale.warmup}")
    return out


def switch_to_fusion_only(config: str, guided: RunConfig) -> list[str]:
    """Overrides of the shipped ``config`` that train with ``fusion_only``: the options of the method's own
    strategy removed, and the optimiser, schedule and warm-up the task-guided run (``guided``) gives its fusion
    network."""
    engine = {f.name for f in dataclasses.fields(TrainConfig)}
    kept = {f.name for f in dataclasses.fields(FusionOnlyOptions)}
    own = read_tree(resolve_source(config)).get("train", {})
    phase = STRATEGIES.get(guided.strategy).fusion_phase(guided)
    keys = ("optimizer", "lr", "momentum", "betas", "weight_decay", "lr_schedule", "poly_power", "lr_decay")
    keys += ("warmup_iters", "warmup_start_lr", "grad_clip")
    return [
        "train.strategy=fusion_only",
        *(f"train.{k}=null" for k in own if k not in engine | kept),
        *(f"train.{k}={value(plain(getattr(phase, k)))}" for k in keys),
    ]


def fusion_only_overrides(scale: Scale, method: str, guided: RunConfig) -> list[str]:
    """``fusion_only`` (``switch_to_fusion_only``) with the same fusion steps as the task-guided run."""
    return [
        *switch_to_fusion_only(synthetic_config(method), guided),
        *STRATEGIES.get("fusion_only").budget(budget(scale), models.get(method)),
    ]


def synthetic_config(method: str) -> str:
    return f"{models.get(method).config}_synthetic"


def training_config(
    scale: Scale, method: str, variant: str, scenes: Path, seed: int, progress: bool = True
) -> RunConfig:
    """The validated config of one variant of one method."""
    methods = benchmark_methods()
    if method not in methods:
        raise TaskfuseError(f"{method!r} is not a learned method of the benchmark; choose from {', '.join(methods)}")
    if variant not in VARIANTS:
        raise TaskfuseError(f"variant {variant!r}: choose {' or '.join(VARIANTS)}")
    guided = load_config(
        synthetic_config(method),
        [*common_overrides(scale, method, scenes, seed, True, progress), *task_guided_overrides(scale, method)],
    )
    if variant == "task-guided":
        return guided
    overrides = common_overrides(scale, method, scenes, seed, False, progress)
    return load_config(synthetic_config(method), [*overrides, *fusion_only_overrides(scale, method, guided)])


def train_variant(
    scale: Scale, method: str, variant: str, out: Path, seed: int, device: str, progress: bool = True
) -> Trained:
    """Train one variant into ``out/runs/<method>-<variant>-<stamp>``, or reuse / resume an earlier run.

    A finished run leaves ``out/runs/<method>-<variant>.json`` (weights relative to ``out``, steps, seconds)
    and its resumable checkpoints are deleted (they only serve to resume); a rerun returns the record. An
    interrupted run is resumed from its latest checkpoint.
    """
    name = f"{method}-{variant}"
    if (out / "runs" / f"{name}.json").is_file():
        return finished(out, name)
    cfg = training_config(scale, method, variant, out / "scenes", seed, progress)
    return train_recorded(cfg, out, name, device)


def finished(out: Path, name: str) -> Trained:
    """The record of the finished training ``out/runs/<name>.json``."""
    data = json.loads((out / "runs" / f"{name}.json").read_text())
    return Trained(out / data["weights"], data["seconds"], data["steps"], data["resumed"])


def train_recorded(cfg: RunConfig, out: Path, name: str, device: str) -> Trained:
    """Train ``cfg`` into ``out/runs/<name>-<stamp>``, resuming the latest such run that has a checkpoint; then
    record it in ``out/runs/<name>.json`` (weights relative to ``out``) and delete its resumable checkpoints."""
    from taskfuse.train.loop import train

    record = out / "runs" / f"{name}.json"
    started = sorted(d for d in (out / "runs").glob(f"{name}-*") if d.is_dir() and latest_checkpoint(d) is not None)
    resume = started[-1] if started else None
    start = time.perf_counter()
    result = train(cfg, out / "runs", resume=resume, device=device, name=name)
    trained = Trained(result.run_dir / "fusion.safetensors", time.perf_counter() - start, result.steps, bool(resume))
    with atomic_path(record) as tmp:
        stored = {**dataclasses.asdict(trained), "weights": str(trained.weights.relative_to(out))}
        tmp.write_text(json.dumps(stored, indent=1))
    shutil.rmtree(result.run_dir / CHECKPOINTS, ignore_errors=True)
    return trained

"""The two trainings of every learned method in the benchmark: task-guided (its own strategy, with labels) and
fusion-only (``train.strategy=fusion_only`` on the same images without labels).

Both variants start from the shipped ``<method>_synthetic`` config and read the benchmark's training scenes
from the files ``write_scenes`` made (``msrs`` layout), so they see the same pixels; the fusion-only run opens
them with ``labels: false``. Reading files rather than rendering scenes matters: rendered scenes carry boxes,
and FGFusion's and DSIFuse's losses turn boxes into foreground masks, which would give the fusion-only variant
task supervision through the back door.

Both variants take the same number of fusion-network steps (``Scale.fusion_steps``), batch size and crop:

* SeAFusion: task-guided runs ``rounds`` rounds, each ``fusion_steps / rounds`` fusion steps with
  ``λ = round index`` (the authors' ``train.py``) and then ``segmenter_steps`` BiSeNet steps; fusion-only runs
  ``fusion_steps`` steps of the fusion loss. The fusion phase's step decay per epoch is replaced by a
  constant rate in both, since the task-guided optimiser restarts every round and the fusion-only one would
  otherwise decay over all rounds: both see the same learning rate at every step.
* MAFS: ``pretext_steps`` of stage I, then ``fusion_steps - pretext_steps`` of stage II in both; task-guided
  additionally trains its teacher segmenter (``teacher_steps``) in between.
* PSFusion, FGFusion, DSIFuse: ``fusion_steps`` steps of their loss, with or without its semantic terms.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from taskfuse.benchmark.scales import Scale
from taskfuse.data.io import atomic_path
from taskfuse.errors import TaskfuseError
from taskfuse.train.config import RunConfig, TrainConfig, load_config, read_tree, resolve_source
from taskfuse.train.state import CHECKPOINTS, latest_checkpoint
from taskfuse.train.strategies.fusion_only import FusionOnlyOptions

METHODS = ("seafusion", "psfusion", "mafs", "fgfusion", "dsifuse")
"""The learned methods of the seeds, in the order of their papers."""
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
    out += [f"model.{k}={value(v)}" for k, v in scale.models.get(method, {}).items()]
    return out


def task_guided_overrides(scale: Scale, method: str) -> list[str]:
    """Lengths of the method's own strategy (see the module docstring)."""
    phase = f"batch_size={scale.batch_size}", f"crop={scale.crop}"
    if method == "seafusion":
        return [
            f"train.rounds={scale.rounds}",
            f"train.seg_weight_per_round={value(list(range(scale.rounds)))}",
            f"train.fusion.iters={scale.fusion_steps // scale.rounds}",
            "train.fusion.epochs=0",
            "train.fusion.lr_schedule=constant",
            *(f"train.fusion.{p}" for p in phase),
            f"train.segmentation.iters_per_round={scale.segmenter_steps}",
            f"train.segmentation.max_iters={scale.rounds * scale.segmenter_steps}",
            f"train.segmentation.warmup_iters={scale.warmup}",
            *(f"train.segmentation.{p}" for p in phase),
        ]
    if method == "mafs":
        return [
            *mafs_lengths(scale),
            f"train.teacher_segmenter={scale.teacher}",
            f"train.teacher_training.iters={scale.teacher_steps}",
            f"train.teacher_training.warmup_iters={scale.warmup}",
        ]
    return [f"train.iters={scale.fusion_steps}", "train.epochs=0", *warmup(method, scale)]


def mafs_lengths(scale: Scale) -> list[str]:
    """MAFS's stage-I and stage-II lengths, the same in both variants: together ``fusion_steps``."""
    return [
        f"train.pretext.iters={scale.pretext_steps}",
        "train.pretext.epochs=0",
        f"train.iters={scale.fusion_steps - scale.pretext_steps}",
        "train.epochs=0",
    ]


def warmup(method: str, scale: Scale) -> list[str]:
    """PSFusion's recipe warms up for 1000 of its ~170k steps; the benchmark's shorter runs warm up for
    ``scale.warmup`` steps."""
    return [f"train.warmup_iters={scale.warmup}"] if method == "psfusion" else []


def fusion_only_overrides(scale: Scale, method: str) -> list[str]:
    """``fusion_only`` with the options of the method's own strategy removed and the same fusion steps."""
    source = f"{method}_synthetic"
    engine = {f.name for f in dataclasses.fields(TrainConfig)}
    kept = {f.name for f in dataclasses.fields(FusionOnlyOptions)}
    own = read_tree(resolve_source(source)).get("train", {})
    out = ["train.strategy=fusion_only", *(f"train.{k}=null" for k in own if k not in engine | kept)]
    if method == "seafusion":
        fusion = load_config(source).options.fusion
        out += [
            f"train.optimizer={fusion.optimizer}",
            f"train.lr={fusion.lr}",
            f"train.betas={value(list(fusion.betas))}",
            f"train.weight_decay={fusion.weight_decay}",
            "train.lr_schedule=constant",
        ]
    if method == "mafs":
        return [*out, *mafs_lengths(scale)]
    return [*out, f"train.iters={scale.fusion_steps}", "train.epochs=0", *warmup(method, scale)]


def training_config(
    scale: Scale, method: str, variant: str, scenes: Path, seed: int, progress: bool = True
) -> RunConfig:
    """The validated config of one variant of one method."""
    if method not in METHODS:
        raise TaskfuseError(f"{method!r} is not a learned method of the benchmark; choose from {', '.join(METHODS)}")
    if variant not in VARIANTS:
        raise TaskfuseError(f"variant {variant!r}: choose {' or '.join(VARIANTS)}")
    guided = variant == "task-guided"
    overrides = common_overrides(scale, method, scenes, seed, guided, progress)
    overrides += task_guided_overrides(scale, method) if guided else fusion_only_overrides(scale, method)
    return load_config(f"{method}_synthetic", overrides)


def train_variant(
    scale: Scale, method: str, variant: str, out: Path, seed: int, device: str, progress: bool = True
) -> Trained:
    """Train one variant into ``out/runs/<method>-<variant>-<stamp>``, or reuse / resume an earlier run.

    A finished run leaves ``out/runs/<method>-<variant>.json`` (weights relative to ``out``, steps, seconds)
    and its resumable checkpoints are deleted (they only serve to resume); a rerun returns the record. An
    interrupted run is resumed from its latest checkpoint.
    """
    from taskfuse.train.loop import train

    name = f"{method}-{variant}"
    record = out / "runs" / f"{name}.json"
    if record.is_file():
        data = json.loads(record.read_text())
        return Trained(out / data["weights"], data["seconds"], data["steps"], data["resumed"])
    cfg = training_config(scale, method, variant, out / "scenes", seed, progress)
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

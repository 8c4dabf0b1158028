"""The training loop shared by every strategy: steps, logging, validation, EMA, checkpoints and resuming.

>>> from taskfuse.train import load_config, train
>>> result = train(load_config("seafusion_synthetic", ["log.progress=false"], quick=True), "runs", device="cpu")
>>> sorted(p.name for p in result.run_dir.glob("*.safetensors"))   # fusion: for taskfuse fuse --weights
['best.safetensors', 'fusion.safetensors', 'segmenter.safetensors']

``train`` makes ``RUN = out/<name>-<date>-<time>`` (or continues ``resume``, a run folder), saves the
resolved config there, and runs ``strategy.train_step(t)`` for every step ``t``. Every ``log.every`` steps
the logged values (averaged over processes) go to ``metrics.csv``; every ``log.val_every`` steps and at the
end the fusion net (its EMA when ``train.ema``) is validated on ``data.val``; every ``log.checkpoint_every``
steps and at the end a resumable checkpoint is written (``taskfuse.train.state``). A resumed run restores
networks, optimisers, strategy state, data position and every random generator, so its losses continue
exactly as the uninterrupted run's would.
"""

from __future__ import annotations

import math
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import Tensor
from torch.utils.data import Dataset
from tqdm import tqdm

from taskfuse.errors import TaskfuseError
from taskfuse.metrics.fusion import metric_info
from taskfuse.models.weights import builtin_weights, init_weights, save_weights
from taskfuse.train import distributed
from taskfuse.train.config import DatasetConfig, RunConfig, save_config
from taskfuse.train.data import Stream, build_dataset, val_loader
from taskfuse.train.ema import EMA
from taskfuse.train.log import MetricLog
from taskfuse.train.ranges import step_range
from taskfuse.train.state import (
    checkpoint_dir,
    latest_checkpoint,
    load_checkpoint,
    prune_checkpoints,
    rng_state,
    save_checkpoint,
    seed_everything,
    set_rng_state,
)
from taskfuse.train.strategies import STRATEGIES, Context, Strategy
from taskfuse.train.validate import validate


@dataclass
class TrainResult:
    """Where the run is and how it ended: ``scores`` of the last validation, ``best`` the best one."""

    run_dir: Path
    steps: int
    scores: dict[str, float] = field(default_factory=dict)
    best: dict[str, float] = field(default_factory=dict)


def train(
    cfg: RunConfig,
    out: str | Path = "runs",
    resume: str | Path | None = None,
    device: str | None = None,
    name: str | None = None,
) -> TrainResult:
    """Train as ``cfg`` says; ``resume`` continues the run folder given (its latest checkpoint).

    A new run's folder is made only once the datasets, networks and initial weights are built, and removed
    again when the run stops before its first step is done: a failed start leaves no folder behind."""
    info = distributed.setup(device or cfg.train.device)
    try:
        if resume is not None:
            run_dir = Path(resume)
            if latest_checkpoint(run_dir) is None:
                raise TaskfuseError(f"{run_dir}: no complete checkpoint to resume from; start a new run instead")
            trainer = Trainer(cfg, run_dir, info)
            if info.main and stored_config(run_dir) != cfg.to_dict():
                save_config(cfg, run_dir / "config.yaml")
            return trainer.fit(resume=True)
        stamp = distributed.broadcast(time.strftime("%Y%m%d-%H%M%S"), info)
        run_dir = Path(out) / f"{name or cfg.method}-{stamp}"
        trainer = Trainer(cfg, run_dir, info)
        if info.main:
            run_dir.mkdir(parents=True, exist_ok=False)
            save_config(cfg, run_dir / "config.yaml")
        try:
            return trainer.fit(resume=False)
        except BaseException:
            if info.main and trainer.step == 0:
                shutil.rmtree(run_dir, ignore_errors=True)
            raise
    except BaseException:
        distributed.teardown(info, wait=False)
        raise
    finally:
        distributed.teardown(info)


def init_path(init: str, method: str) -> Path:
    """The weights file ``train.init`` names: a path, or ``builtin`` for the method's shipped weights."""
    return builtin_weights(method) if init == "builtin" else Path(init)


class Trainer:
    def __init__(self, cfg: RunConfig, run_dir: Path, info: distributed.DistInfo) -> None:
        self.cfg, self.run_dir, self.info = cfg, run_dir, info
        self.extra = {"imports": cfg.imports} if cfg.imports else None
        """Metadata stored with exported weights: the modules that register an out-of-tree method."""
        seed_everything(cfg.train.seed)
        if info.device.type == "cuda":
            torch.backends.cudnn.benchmark = cfg.train.cudnn_benchmark
        strategy_cls = STRATEGIES.get(cfg.strategy)
        datasets: list[tuple[DatasetConfig, Dataset]] = []
        self.streams: dict[str, Stream] = {}
        for i, (phase, (spec, settings)) in enumerate(strategy_cls.phases(cfg).items()):
            ds = next((d for s, d in datasets if s == spec), None)
            if ds is None:
                ds = build_dataset(spec, "data.unlabelled" if spec is cfg.data.unlabelled else "data.train")
                datasets.append((spec, ds))
            seed = cfg.train.seed + i
            self.streams[phase] = Stream(
                ds,
                settings,
                cfg.data,
                seed,
                info.rank,
                info.world,
                info.device,
                processes=info.local_world,
                channels_last=cfg.train.channels_last,
            )
        self.strategy: Strategy = strategy_cls(cfg, Context(cfg, info, self.streams))
        self.total = self.strategy.total_steps()
        if cfg.train.init:
            init_weights(self.strategy.fusion_net(), init_path(cfg.train.init, cfg.method), cfg.method)
        self.ema = EMA(self.strategy.fusion_net(), cfg.train.ema) if cfg.train.ema > 0 else None
        self.val = None
        if cfg.data.val is not None and info.main:
            self.val = val_loader(build_dataset(cfg.data.val, "data.val"), cfg.data)
        self.best: dict[str, float] = {}
        self.scores: dict[str, float] = {}
        self.step = 0
        """Steps done so far."""
        seed_everything(cfg.train.seed + 1 + info.rank)

    def run_step(self, t: int) -> dict[str, Tensor | float]:
        """Step ``t``: the strategy's update, then the EMA. The values to log stay on the device, so that a step
        never waits for the GPU; the loop reads them on the steps it logs or checkpoints."""
        if self.cfg.train.compile:
            torch.compiler.cudagraph_mark_step_begin()
        with step_range("step"):
            values = self.strategy.train_step(t)
            if self.ema is not None:
                with step_range("ema"):
                    self.ema.update(self.strategy.fusion_net())
        return values

    def served(self) -> int:
        return sum(s.served for s in self.streams.values())

    def networks(self) -> dict[str, tuple[Any, str, dict[str, Any]]]:
        nets = self.strategy.networks()
        if self.ema is not None:
            nets["fusion_ema"] = (self.ema.module, self.cfg.method, self.cfg.model)
        return nets

    def fusion_for_eval(self) -> Any:
        return self.ema.module if self.ema is not None else self.strategy.fusion_net()

    def restore(self) -> int:
        folder = latest_checkpoint(self.run_dir)
        assert folder is not None
        state = load_checkpoint(folder, {k: v[0] for k, v in self.networks().items()})
        self.strategy.load_state_dict(state["strategy"])
        for key, stream in self.streams.items():
            stream.load_state_dict(state["streams"][key])
        rngs = state["rng"]
        if len(rngs) != self.info.world:
            raise TaskfuseError(
                f"{folder}: saved by {len(rngs)} process(es) but resumed with {self.info.world}; resume with "
                f"torchrun --nproc_per_node {len(rngs)} (or one process for 1)"
            )
        set_rng_state(rngs[self.info.rank])
        self.best, self.scores = dict(state["best"]), dict(state["scores"])
        return int(state["step"])

    def checkpoint(self, step: int) -> None:
        rngs = distributed.gather(rng_state(), self.info)
        if not self.info.main:
            return
        state = {
            "step": step,
            "strategy": self.strategy.state_dict(),
            "streams": {k: s.state_dict() for k, s in self.streams.items()},
            "rng": rngs,
            "best": self.best,
            "scores": self.scores,
        }
        save_checkpoint(checkpoint_dir(self.run_dir, step), self.networks(), state)
        prune_checkpoints(self.run_dir, self.cfg.log.keep)

    def validate(self, step: int, log: MetricLog) -> None:
        assert self.val is not None
        scores = validate(
            self.fusion_for_eval(), self.val, self.info.device, self.cfg.log.metrics, self.strategy.segment
        )
        self.scores = scores
        log.write(step, {f"val/{k}": v for k, v in scores.items()})
        key = self.cfg.log.best
        if key and key in scores and (not self.best or better(key, scores[key], self.best[key])):
            self.best = {**scores, "step": float(step)}
            save_weights(
                self.fusion_for_eval(), self.run_dir / "best.safetensors", self.cfg.method, self.cfg.model, self.extra
            )

    def stop_unless_finite(self, values: dict[str, float], step: int) -> None:
        """Stop the run when a logged value is NaN or infinite, before anything of it is saved: a diverged network
        would otherwise train on, be checkpointed and exported as if it were fine. Checked on the steps that read
        the values anyway (logging, checkpoints)."""
        bad = sorted(k for k, v in values.items() if not math.isfinite(v))
        if bad:
            last = latest_checkpoint(self.run_dir)
            kept = f"the latest checkpoint, {last.name}, was saved before it" if last else "no checkpoint was saved"
            raise TaskfuseError(
                f"{self.run_dir}: step {step}: {', '.join(bad)} not finite, so the run stops ({kept}); lower "
                "train.lr, or set train.amp=false where bf16 overflows"
            )

    def fit(self, resume: bool) -> TrainResult:
        cfg, info = self.cfg, self.info
        start = self.step = self.restore() if resume else 0
        log = MetricLog(self.run_dir, start if resume else None, cfg.log.tensorboard) if info.main else None
        bar = tqdm(
            total=self.total,
            initial=start,
            desc=cfg.method,
            unit="step",
            dynamic_ncols=True,
            disable=not (info.main and cfg.log.progress),
            file=sys.stderr,
        )
        served, last_time = self.served(), time.perf_counter()
        try:
            for t in range(start, self.total):
                values = self.run_step(t)
                done = self.step = t + 1
                final = done == self.total
                logged = done % cfg.log.every == 0 or final
                saved = done % cfg.log.checkpoint_every == 0 or final
                if logged or saved:
                    values = distributed.mean_across({k: float(v) for k, v in values.items()}, info)
                    self.stop_unless_finite(values, done)
                if logged:
                    now, images = time.perf_counter(), self.served()
                    values["img_s"] = info.world * (images - served) / max(now - last_time, 1e-9)
                    served, last_time = images, now
                    if log is not None:
                        log.write(done, {f"train/{k}": v for k, v in values.items()})
                    shown = [k for k in values if k not in ("img_s", "total")][:4]
                    shown = [k for k in ("total", *shown, "img_s") if k in values]
                    bar.set_postfix({k: f"{values[k]:.4g}" for k in shown}, refresh=False)
                if self.val is not None and ((cfg.log.val_every and done % cfg.log.val_every == 0) or final):
                    self.validate(done, log)  # type: ignore[arg-type]
                if saved:
                    self.checkpoint(done)
                bar.set_description(f"{cfg.method} {self.strategy.phase_at(t)}", refresh=False)
                bar.update(1)
        except KeyboardInterrupt:
            if info.main and latest_checkpoint(self.run_dir) is not None:
                print(f"\ninterrupted; continue with: taskfuse train --resume {self.run_dir}", file=sys.stderr)
            elif info.main and self.step > 0:
                print(
                    f"\ninterrupted before the first checkpoint (log.checkpoint_every): {self.run_dir} cannot be "
                    "resumed",
                    file=sys.stderr,
                )
            raise
        finally:
            bar.close()
            for stream in self.streams.values():
                stream.close()
            if log is not None:
                log.close()
        if info.main:
            for name, (module, method, config) in self.networks().items():
                if name != "fusion_ema":
                    export = self.ema.module if name == "fusion" and self.ema is not None else module
                    save_weights(export, self.run_dir / f"{name}.safetensors", method, config, self.extra)
        distributed.barrier(info)
        return TrainResult(self.run_dir, self.total, self.scores, self.best)


def stored_config(run_dir: Path) -> dict[str, Any] | None:
    """The resolved config a run folder holds (without its provenance), or None."""
    path = run_dir / "config.yaml"
    if not path.is_file():
        return None
    data = yaml.safe_load(path.read_text()) or {}
    data.pop("provenance", None)
    return data


def better(metric: str, new: float, old: float) -> bool:
    """Whether ``new`` beats ``old``: in the direction the fusion metric is registered with (mIoU: higher)."""
    up = metric == "mIoU" or metric_info(metric).higher_is_better
    return new > old if up else new < old

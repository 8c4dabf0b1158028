"""Optimisers, and learning-rate schedules as pure functions of the step (a resumed run needs no extra state).

Schedules (``PhaseConfig.lr_schedule``), with ``t`` the schedule's step and ``W`` = ``warmup_iters``:

* warm-up (any schedule, ``t < W``): ``warmup_start_lr * (lr / warmup_start_lr) ** (t / W)``, the
  exponential ramp of the BiSeNet optimiser that SeAFusion's segmenter and PSFusion train with (authors'
  ``optimizer.py``: ``warmup_factor ** it``);
* ``poly``: ``lr * (1 - (t - W) / (T - W)) ** poly_power`` over ``T`` steps (PSFusion, DSIFuse, BiSeNet);
* ``step``: ``lr * lr_decay ** epoch`` (SeAFusion's fusion network: 0.75 per epoch, ``train.py``, whose
  ``lr_decay ** (epo - 1)`` runs the first epoch at lr / 0.75; here the first epoch runs at ``lr``);
* ``constant``: ``lr``.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn

from taskfuse.train.config import PhaseConfig
from taskfuse.train.ranges import step_range


def lr_at(cfg: PhaseConfig, step: int, total: int, steps_per_epoch: int) -> float:
    """Learning rate of schedule step ``step`` (0-based) of ``total``."""
    warm = cfg.warmup_iters
    if step < warm:
        return cfg.warmup_start_lr * (cfg.lr / cfg.warmup_start_lr) ** (step / warm)
    if cfg.lr_schedule == "poly":
        frac = (step - warm) / max(total - warm, 1)
        return cfg.lr * max(1.0 - frac, 0.0) ** cfg.poly_power
    if cfg.lr_schedule == "step":
        return cfg.lr * cfg.lr_decay ** (step // max(steps_per_epoch, 1))
    return cfg.lr


def make_optimizer(params: Iterable[nn.Parameter], cfg: PhaseConfig) -> torch.optim.Optimizer:
    """The optimiser ``cfg.optimizer`` names. On a GPU it runs PyTorch's fused implementation: the same
    algorithm as the default multi-tensor one, in fewer kernel launches."""
    params = [p for p in params if p.requires_grad]
    fused = bool(params) and all(p.is_cuda and p.is_floating_point() for p in params)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, fused=fused or None
        )
    kind = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return kind(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay, fused=fused or None)


class Optimised:
    """One optimiser with its schedule and gradient clipping: ``step(loss, t)`` does backward and update."""

    def __init__(self, params: Iterable[nn.Parameter], cfg: PhaseConfig, total: int, steps_per_epoch: int) -> None:
        self.params = [p for p in params if p.requires_grad]
        self.cfg, self.total, self.steps_per_epoch = cfg, total, steps_per_epoch
        self.optimizer = make_optimizer(self.params, cfg)

    def step(self, loss: Tensor, t: int) -> float:
        """Back-propagate ``loss``, update at the learning rate of schedule step ``t``, return that rate.

        Nothing here reads a value back from the device: the rate is computed on the host, clipping scales the
        gradients by a factor kept on the device, and the gradients are dropped after the update."""
        lr = lr_at(self.cfg, t, self.total, self.steps_per_epoch)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        with step_range("backward"):
            loss.backward()
        with step_range("optimiser"):
            if self.cfg.grad_clip > 0:
                nn.utils.clip_grad_norm_(self.params, self.cfg.grad_clip)
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        return lr

    def reset(self) -> None:
        """Forget the optimiser's moments (a fresh optimiser, as SeAFusion builds one every round)."""
        self.optimizer.state.clear()

    def state_dict(self) -> dict:
        return self.optimizer.state_dict()

    def load_state_dict(self, state: dict) -> None:
        """Restore moments and settings saved by ``state_dict``; whether the update runs fused stays this
        machine's choice (a run saved on a GPU resumes on a CPU and the other way round)."""
        fused = [group.get("fused") for group in self.optimizer.param_groups]
        self.optimizer.load_state_dict(state)
        for group, choice in zip(self.optimizer.param_groups, fused, strict=True):
            group["fused"] = choice

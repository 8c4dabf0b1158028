"""A tiny fusion method registered for the engine's tests: two convolutions and a 1 x 1 semantic head, no
BatchNorm (so one process with batch 2b and two with batch b see identical gradients)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import yaml
from torch import Tensor, nn

from taskfuse.data.color import luminance
from taskfuse.losses.base import LossTerms
from taskfuse.models import METHODS, MethodSpec, register
from taskfuse.models.base import FusionModel, FusionOutput


class TinyFusion(FusionModel):
    input_mode = "y"
    output_mode = "y"

    def __init__(self, width: int = 4, num_classes: int = 9) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(2, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, width, 3, padding=1))
        self.out = nn.Conv2d(width, 1, 1)
        self.head = nn.Conv2d(width, num_classes, 1)

    def fuse(self, ir: Tensor, vi: Tensor) -> FusionOutput:
        f = torch.relu(self.body(torch.cat((ir, vi), 1)))
        return FusionOutput(torch.sigmoid(self.out(f)), {"semantic": self.head(f)})


class TinyLoss:
    """Intensity-max L1 plus, with labels, ``seg_weight`` times the cross-entropy of the semantic head."""

    def __init__(self, seg_weight: float = 0.1) -> None:
        self.seg_weight = seg_weight

    def __call__(self, out: FusionOutput, batch: Mapping[str, Any]) -> LossTerms:
        parts = {"int": (out.fused - torch.maximum(batch["ir"], luminance(batch["vi"]))).abs().mean()}
        if "label" in batch:
            parts["seg"] = self.seg_weight * F.cross_entropy(out.aux["semantic"], batch["label"], ignore_index=255)
        return LossTerms(sum(parts.values()), {k: v.detach() for k, v in parts.items()})


if "tiny_fusion" not in METHODS:
    register(MethodSpec(name="tiny_fusion", network=TinyFusion, loss=TinyLoss, strategy="single_stage"))


def tiny_config(steps: int = 6, **sections: Any) -> dict[str, Any]:
    """A config mapping for the tiny method on 16 small synthetic scenes; ``sections`` are merged in."""
    cfg: dict[str, Any] = {
        "imports": ["train_helpers"],
        "method": "tiny_fusion",
        "model": {"width": 4},
        "data": {
            "train": {"name": "synthetic", "length": 16, "height": 48, "width": 64, "seed": 0},
            "workers": 0,
            "cache": True,
        },
        "train": {
            "iters": steps,
            "batch_size": 4,
            "crop": 32,
            "optimizer": "adam",
            "lr": 3e-3,
            "lr_schedule": "constant",
        },
        "log": {"every": 1, "checkpoint_every": 3, "keep": 5, "progress": False, "tensorboard": False},
    }
    for key, value in sections.items():
        cfg[key] = {**cfg.get(key, {}), **value} if isinstance(value, dict) else value
    return cfg


def write_config(path: Path, cfg: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(cfg))
    return path


def ddp_worker(rank: int, world: int, port: int, cfg: dict[str, Any], out: str) -> None:
    """One process of a CPU (gloo) DDP run, as torchrun would start it."""
    import os

    from taskfuse.train.loop import train
    from taskfuse.train.resolve import validate

    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)
    train(validate(cfg), out, device="cpu", name="ddp")

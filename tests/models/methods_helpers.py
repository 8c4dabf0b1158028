"""Shared pieces of the SeAFusion / PSFusion model tests: a batch of synthetic scenes, a short training run,
and fusing two real RoadScene pairs through ``taskfuse fuse``."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from taskfuse.cli.main import main
from taskfuse.data.synthetic import render_scene
from taskfuse.models.base import FusionModel
from taskfuse.models.weights import save_weights


def scene_batch(b: int = 2, h: int = 64, w: int = 64) -> dict[str, torch.Tensor]:
    """``b`` procedural labelled road scenes (``taskfuse.data.synthetic.render_scene``) stacked into a batch."""
    scenes = [render_scene(i, h, w) for i in range(b)]
    return {k: torch.stack([s[k] for s in scenes]) for k in ("ir", "vi", "label")}


def train_steps(
    model: FusionModel, loss_fn: Callable[..., torch.Tensor], batch: dict[str, torch.Tensor], steps: int, lr: float
) -> list[float]:
    """Adam steps on one fixed batch; returns the loss before each step."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    history = []
    for _ in range(steps):
        opt.zero_grad()
        loss = loss_fn(model(batch["ir"], batch["vi"]), batch)
        loss.backward()
        opt.step()
        history.append(float(loss.detach()))
    return history


def fuse_roadscene(
    shared_data: Path, tmp: Path, model: FusionModel, method: str, config: dict
) -> list[tuple[Path, tuple[int, int]]]:
    """Save ``model``, copy two RoadScene pairs into ``tmp``, run ``taskfuse fuse``; returns (output, size)."""
    weights = save_weights(model, tmp / f"{method}.safetensors", method, config)
    src = shared_data / "roadscene"
    names = sorted(p.name for p in (src / "ir").iterdir())[:2]
    for side in ("ir", "vi"):
        (tmp / side).mkdir()
        for name in names:
            shutil.copy(src / side / name, tmp / side / name)
    argv = ["fuse", "--ir", str(tmp / "ir"), "--vi", str(tmp / "vi"), "--method", method]
    rc = main([*argv, "--weights", str(weights), "--out", str(tmp / "out"), "--device", "cpu"])
    assert rc == 0
    results = []
    for name in names:
        out = tmp / "out" / f"{Path(name).stem}.png"
        with Image.open(tmp / "vi" / name) as vi:
            size = vi.size
        results.append((out, size))
        assert out.is_file()
        with Image.open(out) as im:
            assert im.size == size
            assert np.asarray(im).std() > 1.0
    return results

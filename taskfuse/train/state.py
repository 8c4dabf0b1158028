"""Resumable checkpoints: network weights as safetensors, everything else in one ``state.pt``.

Layout of a run folder::

    RUN/config.yaml                      resolved config, package version, git commit
    RUN/metrics.csv                      step, name, value
    RUN/checkpoints/step_00001000/       one folder per checkpoint (the newest ``log.keep`` are kept)
        fusion.safetensors, ...          each network of the strategy (taskfuse.models.weights.save_weights)
        state.pt                         step, optimisers, strategy and loss state, data position, RNG, EMA
    RUN/fusion.safetensors               final fusion weights (EMA when enabled); taskfuse fuse --weights
    RUN/best.safetensors                 fusion weights at the best validation score (log.best)

Every file is written atomically and ``state.pt`` last, so a folder without it is an interrupted write and is
ignored. ``state.pt`` holds only tensors, numbers, strings and containers of them and is read with
``torch.load(weights_only=True)``: nothing is unpickled.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from taskfuse.data.io import atomic_path
from taskfuse.errors import TaskfuseError
from taskfuse.models.weights import load_weights, save_weights

CHECKPOINTS = "checkpoints"
STATE = "state.pt"


def checkpoint_dir(run_dir: Path, step: int) -> Path:
    return run_dir / CHECKPOINTS / f"step_{step:08d}"


def save_checkpoint(
    folder: Path, networks: dict[str, tuple[nn.Module, str, dict[str, Any]]], state: dict[str, Any]
) -> Path:
    """Write each network (name -> (module, method or segmenter name, config)) and then ``state.pt``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, (module, method, config) in networks.items():
        save_weights(module, folder / f"{name}.safetensors", method, config)
    with atomic_path(folder / STATE) as tmp:
        torch.save(state, tmp)
    return folder


def load_checkpoint(folder: Path, networks: dict[str, nn.Module]) -> dict[str, Any]:
    """Load the weights of ``networks`` (strictly) from ``folder`` and return its state."""
    for name, module in networks.items():
        path = folder / f"{name}.safetensors"
        if not path.is_file():
            raise TaskfuseError(f"{path}: missing from the checkpoint; was the run made with another strategy?")
        module.load_state_dict(load_weights(path, next(iter(module.state_dict().values())).device))
    try:
        return torch.load(folder / STATE, map_location="cpu", weights_only=True)
    except Exception as e:
        raise TaskfuseError(
            f"{folder / STATE}: unreadable training state ({e}); resume from an older checkpoint"
        ) from e


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint folder of a run, or None."""
    done = sorted(p for p in (run_dir / CHECKPOINTS).glob("step_*") if (p / STATE).is_file())
    return done[-1] if done else None


def prune_checkpoints(run_dir: Path, keep: int) -> None:
    """Delete all but the newest ``keep`` (at least one) complete checkpoints, and interrupted writes before
    them."""
    folders = sorted((run_dir / CHECKPOINTS).glob("step_*"))
    complete = [p for p in folders if (p / STATE).is_file()]
    if not complete:
        return
    stale = complete[: -max(keep, 1)] + [p for p in folders if p not in complete and p < complete[-1]]
    for p in stale:
        shutil.rmtree(p, ignore_errors=True)


def rng_state() -> dict[str, Any]:
    """Python, NumPy, torch CPU and CUDA generator states, as plain tensors and numbers."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": [kind, torch.from_numpy(np.asarray(keys, dtype=np.int64)), pos, has_gauss, gauss],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    random.setstate(_tuples(state["python"]))
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _tuples(x: Any) -> Any:
    return tuple(_tuples(v) for v in x) if isinstance(x, list | tuple) else x


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)

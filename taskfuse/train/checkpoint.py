"""Model weights as safetensors with a JSON sidecar inside the file's metadata (method, config, version).

Loading never unpickles: safetensors holds only tensors and strings. Training state (optimiser, scheduler,
RNG) is written separately by the training loop.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file
from torch import nn

from taskfuse import __version__
from taskfuse.data.io import atomic_path
from taskfuse.errors import TaskfuseError


def save_weights(model: nn.Module, path: str | os.PathLike, method: str, config: dict[str, Any] | None = None) -> Path:
    """Write ``model.state_dict()`` atomically to ``path`` (.safetensors) with method name and config."""
    path = Path(path)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    meta = {"method": method, "config": json.dumps(config or {}), "taskfuse_version": __version__}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata=meta)
    return path


def read_meta(path: str | os.PathLike) -> dict[str, Any]:
    """The method name and config stored with the weights (``{"method": str, "config": dict, ...}``)."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
    except (SafetensorError, OSError) as e:
        raise TaskfuseError(f"{path}: not a readable safetensors file ({e}); pass a .safetensors checkpoint") from e
    meta["config"] = json.loads(meta.get("config", "{}"))
    return meta


def load_weights(path: str | os.PathLike, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """The state dict stored in ``path``."""
    path = Path(path)
    try:
        return load_file(str(path), device=str(device))
    except (SafetensorError, OSError) as e:
        raise TaskfuseError(f"{path}: not a readable safetensors file ({e}); pass a .safetensors checkpoint") from e


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu", **overrides: Any) -> nn.Module:
    """Build the method named in the file's metadata with its stored config, load the weights, eval mode."""
    from taskfuse import models

    meta = read_meta(path)
    if not meta.get("method"):
        raise TaskfuseError(f"{path}: the file names no method; re-save it with taskfuse.train.checkpoint.save_weights")
    model = models.create(meta["method"], **{**meta["config"], **overrides})
    _load_checked(model, path, f"{meta['method']!r}", "was it saved from another method or config?")
    return model.to(device).eval()


def init_weights(model: nn.Module, path: str | os.PathLike, method: str) -> None:
    """Load the weights in ``path`` into ``model`` in place (``train.init``: fine-tune earlier weights).

    The file must hold weights of ``method`` whose every tensor fits ``model`` (same network config).
    """
    stored = read_meta(path).get("method")
    if stored != method:
        raise TaskfuseError(
            f"{path} holds weights of {stored!r}, this run trains {method!r}; set train.init to {method} weights"
        )
    _load_checked(model, path, f"this run's {method!r} network", "set model: to the config they were trained with")


def _load_checked(model: nn.Module, path: str | os.PathLike, target: str, fix: str) -> None:
    """Load ``path`` into ``model`` after checking that every tensor is there with the same shape."""
    state, own = load_weights(path), model.state_dict()
    misfit = sorted(
        k for k in state.keys() | own.keys() if k not in state or k not in own or state[k].shape != own[k].shape
    )
    if misfit:
        raise TaskfuseError(f"{path}: weights do not fit {target} (missing or misshapen: {misfit[:5]}); {fix}")
    model.load_state_dict(state)

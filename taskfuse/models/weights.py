"""Model weights as safetensors with a JSON sidecar inside the file's metadata (method, config, version).

Loading never unpickles: safetensors holds only tensors and strings. Training state (optimiser, scheduler,
RNG) is written separately by the training loop. Besides ``method`` and ``config`` a file may carry more
JSON metadata: ``imports`` (modules that register a method defined outside taskfuse) and ``provenance``
(where converted weights came from).
"""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file
from torch import nn

from taskfuse.data.io import atomic_path
from taskfuse.errors import TaskfuseError
from taskfuse.models.spec import METHODS
from taskfuse.version import __version__


def save_weights(
    model: nn.Module,
    path: str | os.PathLike,
    method: str,
    config: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``model.state_dict()`` atomically to ``path`` (.safetensors) with method name and config; ``extra``
    entries (``imports``, ``provenance``) are stored as JSON beside them."""
    path = Path(path)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    meta = {"method": method, "config": json.dumps(dict(config or {})), "taskfuse_version": __version__}
    meta |= {k: json.dumps(v) for k, v in (extra or {}).items()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata=meta)
    return path


def read_meta(path: str | os.PathLike) -> dict[str, Any]:
    """The metadata stored with the weights: ``{"method": str, "config": dict, "taskfuse_version": str}`` and,
    where present, ``imports`` and ``provenance``."""
    path = Path(path)
    if path.is_dir():
        raise TaskfuseError(f"{path} is a folder; pass the .safetensors checkpoint file inside it")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
    except (SafetensorError, OSError) as e:
        raise TaskfuseError(f"{path}: not a readable safetensors file ({e}); pass a .safetensors checkpoint") from e
    for key in ("config", "imports", "provenance"):
        if key in meta:
            meta[key] = json.loads(meta[key])
    meta.setdefault("config", {})
    return meta


def load_weights(path: str | os.PathLike, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """The state dict stored in ``path``."""
    path = Path(path)
    try:
        return load_file(str(path), device=str(device))
    except (SafetensorError, OSError) as e:
        raise TaskfuseError(f"{path}: not a readable safetensors file ({e}); pass a .safetensors checkpoint") from e


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu", **overrides: Any) -> nn.Module:
    """Build the method named in the file's metadata with its stored config, load the weights, eval mode.

    The config's ``backbone_weights`` (the ImageNet file a network started from) is not read again: the file's
    weights replace it, and it need not exist where the weights are used."""
    meta = read_meta(path)
    if not meta.get("method"):
        raise TaskfuseError(f"{path}: the file names no method; re-save it with taskfuse.models.weights.save_weights")
    if meta["method"] not in METHODS and meta.get("imports"):
        modules = " ".join(f"--import {m}" for m in meta["imports"])
        raise TaskfuseError(
            f"{path} holds weights of {meta['method']!r}, a method registered by {', '.join(meta['imports'])}; "
            f"import it first (taskfuse {modules} ...)"
        )
    network = METHODS.get(meta["method"]).network
    known = inspect.signature(network).parameters
    unknown = sorted(set(overrides) - set(known))
    if unknown:
        raise TaskfuseError(
            f"{path}: {meta['method']!r} has no config key {', '.join(unknown)}; known: {', '.join(known)}"
        )
    config = {**meta["config"], **overrides}
    if config.get("backbone_weights"):
        config["backbone_weights"] = None
    model = network(**config)
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


def builtin_weights(method: str) -> Path:
    """The weights shipped in the package for ``method`` (``train.init: builtin``, ``taskfuse.load(method)``)."""
    spec = METHODS.get(method)
    if spec.weights is None:
        shipped = [n for n in METHODS.names() if METHODS.get(n).weights is not None]
        raise TaskfuseError(f"no weights ship with {method!r} (only with {', '.join(shipped)}); pass a weights file")
    return spec.weights

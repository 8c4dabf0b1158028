"""Released checkpoints of published methods: read safely, identify, and write as taskfuse weights.

A method's spec lists its converters (``MethodSpec.converters``), one per kind of released file. Each reads the
file with ``read_state_dict`` (``torch.load(weights_only=True)``: tensors and plain containers only, so a file
holding pickled code is refused, never run), renames the tensors to the taskfuse network's names
(``renamed``), and says which model config reproduces the authors' inference and where the file came from
(``provenance``). ``convert`` builds the network with that config, loads every tensor and saves safetensors with
the provenance in its metadata (``taskfuse.models.weights.read_meta(path)["provenance"]``); from then on the file
is used like any other weights (``taskfuse fuse --weights``, ``taskfuse.load(weights=...)``).
"""

from __future__ import annotations

import hashlib
import os
import pickle
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from taskfuse.errors import TaskfuseError
from taskfuse.models.spec import METHODS, Converter
from taskfuse.models.weights import save_weights


@dataclass(frozen=True)
class Release:
    """A released checkpoint file, known by its SHA-256."""

    file: str
    """The file's name in the release."""
    sha256: str
    description: str
    """What the file is (paper, variant)."""
    trained_on: str
    licence: str
    source: str
    """Where it is published."""


def sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_state_dict(path: str | os.PathLike, expected: str) -> dict[str, Tensor]:
    """The tensors of a plain PyTorch state_dict file (zip or legacy format), loaded with ``weights_only=True``.

    A missing, truncated or non-PyTorch file, a file that pickles Python objects (a whole model), or one that
    holds anything but a flat mapping of names to tensors raises ``TaskfuseError`` naming the file and
    ``expected``.
    """
    path = Path(path)
    if not path.is_file():
        raise TaskfuseError(f"{path}: no such file; pass {expected}")
    unreadable = f"{path}: not a readable PyTorch checkpoint, or truncated"
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "unsupported global" in str(e).lower():
            raise TaskfuseError(
                f"{path}: the file pickles Python objects besides tensors (a whole model object?), which are never "
                f"unpickled here; pass {expected}, saved from model.state_dict()"
            ) from e
        raise TaskfuseError(f"{unreadable}; pass {expected}") from e
    except Exception as e:
        raise TaskfuseError(f"{unreadable} ({type(e).__name__}: {str(e)[:200]}); pass {expected}") from e
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        kind = type(state).__name__
        raise TaskfuseError(f"{path}: holds a {kind}, not a flat state_dict of tensors; pass {expected}")
    return dict(state)


def renamed(
    state: Mapping[str, Tensor],
    rename: Callable[[str], str | None],
    target: Mapping[str, Tensor],
    path: str | os.PathLike,
    expected: str,
) -> dict[str, Tensor]:
    """``state`` under the names ``rename`` gives (None drops a tensor the authors' network never uses), checked
    to hold exactly the tensors of ``target`` (a network's ``state_dict()``) with their shapes."""
    names = {k: rename(k) for k in state}
    out = {new: state[k] for k, new in names.items() if new is not None}
    problems = []
    missing = [k for k in target if k not in out]
    if missing:
        problems.append(f"lacks {len(missing)} of the {len(target)} tensors the network needs")
    extra = [k for k, new in names.items() if new is not None and new not in target]
    if extra:
        problems.append(f"has {len(extra)} unexpected ones ({', '.join(extra[:3])}{', ...' * (len(extra) > 3)})")
    misshapen = [
        f"{k} {tuple(state[k].shape)} instead of {tuple(target[new].shape)}"
        for k, new in names.items()
        if new in target and state[k].shape != target[new].shape
    ]
    if misshapen:
        problems.append(f"misshapes {', '.join(misshapen[:3])}{', ...' * (len(misshapen) > 3)}")
    if problems:
        raise TaskfuseError(f"{path}: of its {len(state)} tensors, it {'; '.join(problems)}; pass {expected}")
    return out


def provenance(
    path: str | os.PathLike, digest: str, release: Release | None, converter: str, known: str
) -> dict[str, Any]:
    """Where converted weights came from: the file's name and SHA-256, and, for a known ``release``, what it is,
    what it was trained on and its licence; ``known`` names the release files the converter recognises."""
    entry: dict[str, Any] = {"source_file": Path(path).name, "sha256": digest, "converter": converter}
    if release is None:
        return entry | {
            "release": f"not a known release (SHA-256 differs from {known}): settings of that release assumed",
            "trained_on": "unknown",
            "licence": "unknown",
        }
    return entry | {
        "release": release.description,
        "release_file": release.file,
        "trained_on": release.trained_on,
        "licence": release.licence,
        "source": release.source,
    }


def convert(method: str, converter: Converter, src: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Read ``src`` with ``converter`` (one of ``method``'s), build the network with the config it gives, load
    every tensor and save ``out`` (.safetensors) with the method, config and provenance."""
    src, out = Path(src), Path(out)
    if out.suffix != ".safetensors":
        raise TaskfuseError(f"--out {out}: converted weights are written as .safetensors; name the file *.safetensors")
    if out.exists() and src.exists() and out.resolve() == src.resolve():
        raise TaskfuseError(f"--out {out} is the source file; write the converted weights to another file")
    state, config, origin = converter.read(src)
    model = METHODS.get(method).network(**config)
    model.load_state_dict(state)
    return save_weights(model, out, method, config, extra={"provenance": origin})

"""The run manifest: what made the images of an output folder, so that a rerun resumes only identical work.

``taskfuse fuse`` writes ``OUT/taskfuse-run.json`` (atomically) before it fuses anything::

    {"settings": {"method": "lite", "weights_sha256": "…", "config": {}, "ir_range": "auto", …},
     "info": {"taskfuse_version": "0.2.0", "weights": "/path/lite.safetensors", "device": "cpu", …},
     "outputs": ["00001.png", "day/00002.png", …]}

``settings`` holds everything that changes the pixels; a rerun with other settings refuses to add its images
to the folder. ``info`` records what does not (the version, where the weights file was, the device: CPU and
GPU differ by float rounding only). ``outputs`` lists every image planned under these settings, relative to
the folder, so that replacing a run (``--overwrite``) also removes the images the new run does not redo.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from taskfuse.data.io import atomic_path
from taskfuse.errors import TaskfuseError

MANIFEST = "taskfuse-run.json"


@dataclass
class Manifest:
    """The contents of ``taskfuse-run.json`` (see the module docstring)."""

    settings: dict[str, Any]
    info: dict[str, Any] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)


def read_manifest(folder: str | os.PathLike) -> Manifest | None:
    """The manifest in ``folder``, or None when there is none; a damaged one raises."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        manifest = Manifest(dict(data["settings"]), dict(data.get("info", {})), list(data.get("outputs", [])))
        outside = [rel for rel in manifest.outputs if not _relative(rel)]
        if outside:
            raise ValueError(f"outputs outside the folder: {outside[:3]}")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise TaskfuseError(
            f"{path}: not a readable run manifest ({e}); the folder's settings are unknown: use a new folder, or "
            "--overwrite to replace its images"
        ) from e
    return manifest


def _relative(rel: object) -> bool:
    """Whether ``rel`` is a path inside the folder (relative, no ``..``): only those may ever be removed."""
    return isinstance(rel, str) and bool(rel) and not PurePosixPath(rel).is_absolute() and ".." not in rel.split("/")


def write_manifest(folder: str | os.PathLike, manifest: Manifest) -> Path:
    """Write ``manifest`` into ``folder`` atomically."""
    path = Path(folder) / MANIFEST
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(asdict(manifest), indent=1) + "\n", encoding="ascii")
    return path


def changed(stored: dict[str, Any], asked: dict[str, Any]) -> list[str]:
    """Keys whose values differ between two ``settings`` dicts (a key missing on one side differs)."""
    keys = dict.fromkeys([*stored, *asked])
    return [k for k in keys if k not in stored or k not in asked or stored[k] != asked[k]]


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes, in hex (identifies weights whatever their file is called)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()

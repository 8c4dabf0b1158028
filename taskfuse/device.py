"""Which torch device a command runs on (``--device``, ``train.device``)."""

from __future__ import annotations

import torch

from taskfuse.errors import TaskfuseError


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` picks CUDA when available; asking for CUDA on a machine without it is an error."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise TaskfuseError("--device cuda was asked for but no CUDA GPU is available; use --device cpu or auto")
    return dev

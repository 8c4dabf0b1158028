"""Which torch device a command runs on (``--device``, ``train.device``)."""

from __future__ import annotations

import os

import torch

from taskfuse.errors import TaskfuseError

DEVICES = "auto, cpu, cuda, cuda:N or mps"
"""The device names taskfuse accepts, for messages."""


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` picks CUDA when available; any other name must be a device this machine has.

    Unknown names (``gpu``), other device types and absent devices raise ``TaskfuseError`` naming the option.
    """
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as e:
        raise TaskfuseError(f"--device {device}: not a device name; use {DEVICES}") from e
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise TaskfuseError(
                f"--device {device} was asked for but no CUDA GPU is available; use --device cpu or auto"
            )
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise TaskfuseError(f"--device {device}: this machine has {count} CUDA GPU(s), cuda:0..cuda:{count - 1}")
    elif dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise TaskfuseError(f"--device {device}: Apple's MPS is not available here; use --device cpu or auto")
    elif dev.type != "cpu":
        raise TaskfuseError(f"--device {device}: taskfuse runs on {DEVICES}")
    return dev


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity mask where the OS has one, else all of them)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1

"""Named parts of a training step for ``torch.profiler``, read by ``scripts/train_speed.py --profile``.

``taskfuse.step`` spans one step of the loop (the strategy's update and the EMA); inside it ``taskfuse.data`` is
waiting for the next batch and copying it to the device, ``taskfuse.backward`` the backward pass (DDP's
all-reduces run during it), ``taskfuse.optimiser`` gradient clipping, the update and zeroing the gradients, and
``taskfuse.ema`` the EMA's update. The rest of a step is the forward pass and the loss. Without a profiler
running, a range costs a microsecond or two.

A GPU runs behind the host, so its work lands in whichever range next waits for it. Inside ``synchronised``
every range waits for the device when it opens and when it closes, which makes its CPU time the wall time of
its part of the step; the waits cost time, so this is for profiling only.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

_WAIT_FOR: list[torch.device] = []


def _wait() -> None:
    if _WAIT_FOR:
        torch.cuda.synchronize(_WAIT_FOR[-1])


@contextlib.contextmanager
def step_range(name: str) -> Iterator[None]:
    """Mark ``taskfuse.<name>`` for the profiler around the block."""
    with torch.profiler.record_function(f"taskfuse.{name}"):
        _wait()
        yield
        _wait()


@contextlib.contextmanager
def synchronised(device: torch.device) -> Iterator[None]:
    """Inside the block every range waits for ``device`` (a CUDA device; others need no wait) at both ends."""
    pushed = device.type == "cuda"
    if pushed:
        _WAIT_FOR.append(device)
    try:
        yield
    finally:
        if pushed:
            _WAIT_FOR.pop()

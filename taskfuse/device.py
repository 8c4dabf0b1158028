"""Which torch device a command runs on (``--device``, ``train.device``)."""

from __future__ import annotations

import ctypes
import os
import sys
import warnings
from collections import OrderedDict
from collections.abc import Callable

import torch
from torch import Tensor

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


M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
"""glibc's ``mallopt`` option numbers (``malloc.h``)."""
HOST_MALLOC = {M_MMAP_THRESHOLD: 32 << 20, M_TRIM_THRESHOLD: 1 << 30, M_TOP_PAD: 1 << 30}
"""glibc ``mallopt`` settings of ``reuse_freed_memory``: ``M_MMAP_THRESHOLD`` 32 MiB (glibc's largest; blocks
below it come from the heap, not from a fresh mapping each), ``M_TRIM_THRESHOLD`` 1 GiB (freed memory up to that
stays with the process) and ``M_TOP_PAD`` 1 GiB (the heap grows in large steps of address space, touched only
when used)."""


def reuse_freed_memory() -> bool:
    """Have glibc's allocator keep the memory torch frees on the CPU for its next tensors (``HOST_MALLOC``), rather
    than return it to the system and take it back page by page. Returns whether the settings were applied.

    By default glibc maps each large block afresh and unmaps it when freed; every page of the next one then
    faults in zeroed by the kernel. One 640 x 480 pair through the default network on 2 cores took about 60,000
    such page faults and 111-121 ms of kernel time; with these settings at most 800 and 2 ms, and 135-137 ms per
    pair instead of 192-194 (``docs/performance.md``, "CPU"). Freed memory is kept rather than returned, so the
    resident size stays at its peak until the process ends. Applies on Linux with glibc only, and not when the
    environment already tunes the allocator (a ``MALLOC_*`` variable, or an allocator such as jemalloc in
    ``LD_PRELOAD``): the command line calls it for every command."""
    if not sys.platform.startswith("linux") or any(k.startswith("MALLOC_") for k in os.environ):
        return False
    if "malloc" in os.environ.get("LD_PRELOAD", ""):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return all([mallopt(option, value) == 1 for option, value in HOST_MALLOC.items()])


class EagerReplayWarning(RuntimeWarning):
    """A ``GraphReplay`` signature runs eagerly because its CUDA graph capture failed. Benchmarks turn it into an
    error (``warnings.simplefilter("error", EagerReplayWarning)``): their figures would not be of replayed work."""


class GraphReplay:
    """``fn`` of CUDA tensors to one tensor, replayed from a CUDA graph captured for each signature of its inputs
    (shapes, dtypes, device) from the second call with that signature on; the first runs eagerly, which also
    warms up what capture cannot allocate (cuDNN's and cuBLAS's workspaces).

    A replay is one launch where an eager forward pass is hundreds, each of which takes the interpreter lock
    again, in turn with every thread of the decoding and encoding pools. The tensor returned is the graph's own,
    overwritten by the next call with that signature: use it, or copy it, before calling again (work queued on
    the same stream, such as a copy to the host, is). A signature whose capture fails (a function that waits for
    the host or copies from it, say) runs eagerly, with an ``EagerReplayWarning`` naming the failure (a function
    meant to replay that silently stops doing so costs its callers their speed), while it is among the ``keep``
    signatures held; the least recently used goes, and with it its graph's memory (it is captured again, or tried
    again, when it returns). Capture forbids waiting for the GPU in this thread only: other threads (an encoding
    pool waiting for earlier batches) go on.
    """

    def __init__(self, fn: Callable[..., Tensor], keep: int = 4) -> None:
        self.fn, self.keep = fn, keep
        self.graphs: OrderedDict[tuple, tuple[torch.cuda.CUDAGraph, list[Tensor], Tensor] | None] = OrderedDict()
        self.seen: set[tuple] = set()

    def __call__(self, *inputs: Tensor) -> Tensor:
        key = tuple((tuple(t.shape), t.dtype, t.device) for t in inputs)
        if key not in self.seen:
            self.seen.add(key)
            return self.fn(*inputs)
        if key not in self.graphs:
            self.graphs[key] = self._capture(inputs)
            while len(self.graphs) > self.keep:
                self.graphs.popitem(last=False)
        self.graphs.move_to_end(key)
        entry = self.graphs[key]
        if entry is None:
            return self.fn(*inputs)
        graph, static, out = entry
        for slot, t in zip(static, inputs, strict=True):
            slot.copy_(t)
        graph.replay()
        return out

    def _capture(self, inputs: tuple[Tensor, ...]) -> tuple[torch.cuda.CUDAGraph, list[Tensor], Tensor] | None:
        """A graph of ``fn`` on copies of ``inputs`` that replays read, or None where capture fails."""
        static = [t.clone() for t in inputs]
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph, capture_error_mode="thread_local"):
                out = self.fn(*static)
        except RuntimeError as e:
            if isinstance(e, torch.cuda.OutOfMemoryError):
                raise
            name = getattr(self.fn, "__qualname__", repr(self.fn))
            warnings.warn(f"{name} runs eagerly: its CUDA graph capture failed ({e})", EagerReplayWarning, stacklevel=3)
            return None
        return graph, static, out

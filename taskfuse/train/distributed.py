"""Several processes, one per GPU, launched by ``torchrun``: DistributedDataParallel, rank-0 output.

``torchrun --nproc_per_node 4 -m taskfuse.cli.main train psfusion_msrs`` sets ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK``; each process then trains on its own share of every epoch (``taskfuse.train.data``), gradients
are averaged by DDP, and only rank 0 logs, validates and writes checkpoints. Without those variables training
runs in one process. The backend is NCCL on CUDA and gloo on CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from taskfuse.device import resolve_device
from taskfuse.errors import TaskfuseError


@dataclass(frozen=True)
class DistInfo:
    """This process's place: ``rank`` of ``world`` processes, and its device."""

    rank: int
    world: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def setup(device: str) -> DistInfo:
    """Join the process group when launched by torchrun (idempotent), else describe a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo(0, 1, resolve_device(device))
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device)
    if dev.type == "cuda":
        if local >= torch.cuda.device_count():
            raise TaskfuseError(
                f"LOCAL_RANK {local} but only {torch.cuda.device_count()} GPUs; lower torchrun --nproc_per_node"
            )
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo", rank=rank, world_size=world)
    return DistInfo(rank, world, dev)


def teardown(info: DistInfo) -> None:
    if info.active and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


class _Dispatch(nn.Module):
    """Routes ``forward(name, *args)`` to ``net.name(*args)``, so methods other than ``forward`` (a pretext
    pass, say) also go through DDP and get their gradients averaged."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return getattr(self.net, name)(*args, **kwargs) if name else self.net(*args, **kwargs)


class Wrapped:
    """A network as the training step calls it: plain, compiled and/or inside DDP. ``module`` is the bare
    network (for state dicts); ``w(*args)`` runs ``forward``, ``w.call("method", *args)`` another method."""

    def __init__(self, module: nn.Module, info: DistInfo, compile: bool = False) -> None:
        self.module = module
        self._forward = torch.compile(module) if compile else module
        self._ddp = None
        if info.active:
            ids = [info.device.index] if info.device.type == "cuda" else None
            self._ddp = DistributedDataParallel(_Dispatch(module), device_ids=ids, find_unused_parameters=True)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._ddp is not None:
            return self._ddp("", *args, **kwargs)
        return self._forward(*args, **kwargs)

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        if self._ddp is not None:
            return self._ddp(name, *args, **kwargs)
        return getattr(self.module, name)(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        """The bare network's other attributes (``w.loss``, ``w.parameters()``), so that code written for a
        network, such as a task family's loss, runs its forward pass through the wrapper."""
        if name == "module":
            raise AttributeError(name)
        return getattr(self.module, name)


def mean_across(values: dict[str, float], info: DistInfo) -> dict[str, float]:
    """Average scalar logs over the processes (every process must pass the same keys)."""
    if not info.active:
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=info.device)
    dist.all_reduce(t)
    return dict(zip(keys, (t / info.world).tolist(), strict=True))


def gather(obj: Any, info: DistInfo) -> list[Any]:
    """``obj`` of every process, in rank order (a one-element list in a single process)."""
    if not info.active:
        return [obj]
    out: list[Any] = [None] * info.world
    dist.all_gather_object(out, obj)
    return out


def broadcast(obj: Any, info: DistInfo) -> Any:
    """Rank 0's ``obj`` on every process."""
    if not info.active:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(info: DistInfo) -> None:
    if info.active:
        dist.barrier()

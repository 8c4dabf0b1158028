"""Several processes, one per GPU, launched by ``torchrun``: DistributedDataParallel, rank-0 output.

``torchrun --nproc_per_node 4 -m taskfuse.cli.main train psfusion_msrs`` sets ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK``; each process then trains on its own share of every epoch (``taskfuse.train.data``), gradients
are averaged by DDP, and only rank 0 logs, validates and writes checkpoints. Without those variables training
runs in one process. The backend is NCCL on CUDA and gloo on CPU.

Each process then uses its share of the machine's CPUs: ``torch.set_num_threads(CPUs // processes on this
machine)`` (at least 1), unless ``OMP_NUM_THREADS`` was set when torchrun started (torchrun itself gives every
process ``OMP_NUM_THREADS=1`` when it was not; that default is replaced). The gradients become views of DDP's
all-reduce buckets (``gradient_as_bucket_view``: no copy back out of the buckets), of ``train.ddp_bucket_mb`` each,
and with ``train.ddp_static_graph`` DDP skips its per-step search for unused parameters where the strategy runs a
network the same way every step.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from taskfuse.device import available_cpus, resolve_device
from taskfuse.errors import TaskfuseError
from taskfuse.train.config import TrainConfig


@dataclass(frozen=True)
class DistInfo:
    """This process's place: ``rank`` of ``world`` processes, ``local_world`` of them on this machine, and its
    device."""

    rank: int
    world: int
    device: torch.device
    local_world: int = 1

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
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    if not threads_given():
        torch.set_num_threads(max(1, available_cpus() // local_world))
    return DistInfo(rank, world, dev, local_world)


def threads_given(parent_environ: Path | None = None) -> bool:
    """Whether ``OMP_NUM_THREADS`` was chosen for this process. torchrun sets ``OMP_NUM_THREADS=1`` for the
    processes it starts when its own environment has none: a value of 1 that the environment torchrun (the parent,
    ``/proc/<ppid>/environ``) started with lacks is that default, not a choice. Where that file cannot be read,
    any value counts as chosen."""
    value = os.environ.get("OMP_NUM_THREADS")
    if value is None:
        return False
    if value.strip() != "1":
        return True
    try:
        parent = (parent_environ or Path(f"/proc/{os.getppid()}/environ")).read_bytes()
    except OSError:
        return True
    return any(entry.startswith(b"OMP_NUM_THREADS=") for entry in parent.split(b"\0"))


def teardown(info: DistInfo, wait: bool = True) -> None:
    """Leave the process group, after the others (``wait``) when the run ended well; a process that failed does
    not wait, since the others may be blocked in a collective it will never join."""
    if info.active and dist.is_initialized():
        if wait:
            dist.barrier()
        dist.destroy_process_group()


class _Dispatch(nn.Module):
    """Routes ``forward(name, loss, *args)`` to ``net.name(*args)`` (``net(*args)`` for an empty name), so methods
    other than ``forward`` (a pretext pass, say) also go through DDP and get their gradients averaged; given a
    ``loss``, returns ``loss(output)``, computed with autocast off (losses run in float32).

    A dataclass result (``FusionOutput``, ``LossTerms``) is returned as a dict of its fields and its class kept in
    ``kind``: DDP looks for the output's tensors in tuples, lists and dicts but not in dataclasses, and without
    them its static graph would not average the first step's gradients.

    ``compile_mode`` (None: eager) compiles each method on its first call, in that ``torch.compile`` mode: a
    compiled module compiles only ``forward``, and its other methods would run eagerly (MAFS's pretext pass did,
    gaining 1.16x where its compiled teacher phase gained 2.94x, ``docs/training.md``)."""

    def __init__(self, net: nn.Module, device_type: str, compile_mode: str | None = None) -> None:
        super().__init__()
        self.net = net
        self.device_type = device_type
        self.compile_mode = compile_mode
        self.compiled: dict[str, Callable[..., Any]] = {}
        self.kind: type | None = None

    def method(self, name: str) -> Callable[..., Any]:
        """``net.name`` (``net`` for an empty name), compiled on first use when there is a ``compile_mode``."""
        bare = getattr(self.net, name) if name else self.net
        if self.compile_mode is None:
            return bare
        if name not in self.compiled:
            self.compiled[name] = torch.compile(bare, mode=self.compile_mode)
        return self.compiled[name]

    def forward(self, name: str, loss: Callable[[Any], Any] | None, *args: Any, **kwargs: Any) -> Any:
        out = self.method(name)(*args, **kwargs)
        if loss is not None:
            with torch.autocast(self.device_type, enabled=False):
                out = loss(out)
        self.kind = type(out) if dataclasses.is_dataclass(out) else None
        return {f.name: getattr(out, f.name) for f in dataclasses.fields(out)} if self.kind else out


class Wrapped:
    """A network as the training step calls it: plain or inside DDP, compiled or not, as ``train`` says
    (``compile``, ``compile_mode``, ``channels_last``, ``ddp_bucket_mb``, ``ddp_static_graph``). ``module`` is the
    bare network (for state dicts); ``w(*args)`` runs ``forward``, ``w.call("method", *args)`` another method, and
    ``w.with_loss(loss, *args)`` returns ``loss(forward(*args))``.

    DDP learns which parameters a step trains from what its forward call returns: every parameter behind a
    returned tensor must receive a gradient. A network's outputs that the loss leaves unused (the semantic heads
    under a label-free loss) would break that, so a loss that may leave outputs unused runs inside the call
    (``with_loss``) and DDP sees only what the loss reached. ``fixed``: every step that runs the network through
    this wrapper uses the same parameters, so DDP's static graph may be used (``train.ddp_static_graph``);
    otherwise DDP searches every step's graph for the parameters in use. With ``torch.compile`` the network is
    compiled inside DDP's wrapper and the loss runs outside the compiled code; with ``train.channels_last`` the
    network's weights are converted here, before any optimiser or EMA reads them. ``trains`` False: the step
    runs the network without training it (a frozen task network, say), so it never goes inside DDP: it has no
    gradients to average."""

    def __init__(
        self, module: nn.Module, info: DistInfo, train: TrainConfig, fixed: bool = True, trains: bool = True
    ) -> None:
        self.module = module
        if train.channels_last:
            module.to(memory_format=torch.channels_last)
        self._dispatch = _Dispatch(module, info.device.type, train.compile_mode if train.compile else None)
        self._run: nn.Module = self._dispatch
        if info.active and trains:
            static = train.ddp_static_graph and fixed
            self._run = DistributedDataParallel(
                self._dispatch,
                device_ids=[info.device.index] if info.device.type == "cuda" else None,
                find_unused_parameters=not static,
                static_graph=static,
                gradient_as_bucket_view=True,
                bucket_cap_mb=train.ddp_bucket_mb,
            )

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._result(self._run("", None, *args, **kwargs))

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return self._result(self._run(name, None, *args, **kwargs))

    def with_loss(self, loss: Callable[[Any], Any], *args: Any, method: str = "", **kwargs: Any) -> Any:
        """``loss(forward(*args))`` (or of ``method``): the pass under the caller's autocast, the loss in float32."""
        return self._result(self._run(method, loss, *args, **kwargs))

    def _result(self, out: Any) -> Any:
        kind = self._dispatch.kind
        return kind(**out) if kind is not None else out

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

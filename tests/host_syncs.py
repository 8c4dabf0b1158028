"""Counting, on the CPU, the operations that make the host wait for a GPU (``HostSyncs``), and the tensors a
forward pass makes on the host (``HostTensors``).

On a GPU the host waits whenever Python reads a value computed there (``item``, ``float``, ``int``, ``bool``,
``tolist``, ``numpy``, ``cpu``, a tensor in an ``if``), when an operation's output size depends on the data
(``nonzero``, boolean-mask indexing, ``masked_select``, ``unique``, ``repeat_interleave`` without an output size),
and when host data is copied to the device without ``non_blocking``. On the CPU none of these wait, but every one
of them still passes through the dispatcher, where a ``TorchDispatchMode`` sees it; copies of host data are seen
as ``torch.tensor`` / ``torch.as_tensor`` calls given a ``device``.

Left out: scalar reads by ``torch.optim`` (the optimisers' step counters are host tensors by design) and work of
the data pipeline (``taskfuse.data``, ``taskfuse.train.data``: it runs in loader processes on host tensors).
"""

from __future__ import annotations

import traceback
from collections import Counter
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

aten = torch.ops.aten

WAITING_OPS = {
    aten._local_scalar_dense.default: "scalar read",
    aten.nonzero.default: "nonzero",
    aten.argwhere.default: "argwhere",
    aten.masked_select.default: "masked_select",
    aten._unique2.default: "unique",
    aten.unique_dim.default: "unique",
    aten.unique_consecutive.default: "unique",
    aten.repeat_interleave.Tensor: "repeat_interleave",
}
INDEXING_OPS = (aten.index.Tensor, aten.index_put.default, aten.index_put_.default, aten._index_put_impl_.default)
HOST_METHODS = ("tolist", "numpy", "cpu")
LEFT_OUT = ("/torch/optim/", "/taskfuse/data/", "/taskfuse/train/data.py")


def _site() -> str | None:
    """``file:line`` of the innermost taskfuse frame, or None when the call is one of ``LEFT_OUT``."""
    frames = traceback.extract_stack()
    if any(part in f.filename for f in frames for part in LEFT_OUT):
        return None
    inner = [f for f in frames if "/taskfuse/" in f.filename]
    return f"{inner[-1].filename.split('/taskfuse/')[-1]}:{inner[-1].lineno}" if inner else "elsewhere"


def _boolean_index(indices: Any) -> bool:
    return any(isinstance(i, torch.Tensor) and i.dtype in (torch.bool, torch.uint8) for i in indices)


class HostSyncs(TorchDispatchMode):
    """``with HostSyncs() as syncs: ...`` counts the waits of the block in ``syncs.sites`` (what, where)."""

    def __init__(self) -> None:
        super().__init__()
        self.sites: Counter[tuple[str, str]] = Counter()
        self._patched: dict[Any, dict[str, Any]] = {}

    @property
    def count(self) -> int:
        return sum(self.sites.values())

    def _record(self, what: str) -> None:
        site = _site()
        if site is not None:
            self.sites[(what, site)] += 1

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if func in WAITING_OPS:
            self._record(WAITING_OPS[func])
        elif func in INDEXING_OPS and _boolean_index(args[1]):
            self._record("boolean-mask indexing")
        return func(*args, **(kwargs or {}))

    def _counting(self, owner: Any, name: str, what: str, needs_device: bool = False) -> None:
        original = getattr(owner, name)

        def counted(*args: Any, **kwargs: Any) -> Any:
            if not needs_device or kwargs.get("device") is not None:
                self._record(what)
            return original(*args, **kwargs)

        self._patched.setdefault(owner, {})[name] = original
        setattr(owner, name, counted)

    def __enter__(self) -> HostSyncs:
        for name in HOST_METHODS:
            self._counting(torch.Tensor, name, name)
        for name in ("tensor", "as_tensor"):
            self._counting(torch, name, "host data to the device", needs_device=True)
        return super().__enter__()

    def __exit__(self, *exc: Any) -> None:
        super().__exit__(*exc)
        for owner, originals in self._patched.items():
            for name, original in originals.items():
                setattr(owner, name, original)
        self._patched.clear()


class HostTensors(TorchDispatchMode):
    """``with HostTensors() as host: ...`` records in ``host.ops`` the operators of the block that returned a
    tensor of more than one element on the CPU: run with inputs elsewhere, each is data made on the host that a GPU
    would need copied (a constant, random numbers), and a node a CUDA graph cannot hold."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: set[str] = set()

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        outs = out if isinstance(out, tuple | list) else [out]
        if any(isinstance(o, torch.Tensor) and o.device.type == "cpu" and o.numel() > 1 for o in outs):
            self.ops.add(str(func))
        return out

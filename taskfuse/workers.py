"""Worker processes forked from this one whose arrays travel through shared memory instead of a pipe.

A ``concurrent.futures.ProcessPoolExecutor`` pickles every argument and result through a pipe and runs two
threads of its own in the calling process to do it: 0.96-1.09 ms of the calling process's CPU per decoded
640 x 480 pair handed back by 8 workers on a 16-core H100 host, where ``ForkedWorkers`` took 0.10-0.13 ms
(``scripts/fuse_contention.py --parts handoff``, ``docs/performance.md``). That process's interpreter lock is what
bounds ``taskfuse fuse`` on a many-core GPU machine, so its share of each pair is kept small here:

* the workers share one anonymous memory map with this process, created before they fork and cut into ``slots``
  slots of ``slot_bytes`` (not a file under ``/dev/shm``, whose size a container may limit); an array argument
  is copied into a free slot and a worker reads it in place, an array result (or a tuple of them) is written
  into a slot reserved with its task and handed back as views of that slot, which returns to the free slots
  once the last view (or a tensor made from one) is gone;
* whatever does not fit a slot, or finds none free, travels pickled through the pipe as before: slots only make
  a hand-over cheaper, never decide whether it happens;
* the tasks go through one pipe that the workers take turns reading, so an idle worker takes the next task, and
  the results come back through another, read by a single thread of this process, which also notices a worker
  that dies and fails the waiting futures instead of letting them wait forever.

The workers start at once, before the caller starts threads of its own; they never touch a GPU (a forked child
cannot use its parent's CUDA context).
"""

from __future__ import annotations

import itertools
import math
import mmap
import multiprocessing
import pickle
import threading
import warnings
import weakref
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

import numpy as np

from taskfuse.errors import TaskfuseError

FORK = "fork" in multiprocessing.get_all_start_methods()
"""Whether worker processes can be forked here (not on Windows)."""

_ALIGN = 64
_CANCEL = 0
"""Byte of the memory map that, once set, makes the workers skip the tasks still queued."""


@dataclass(frozen=True)
class _InSlot:
    """Arrays laid out in slot ``slot``: (offset, shape, dtype) each, ``single`` when a bare array (not a tuple)."""

    slot: int
    arrays: tuple[tuple[int, tuple[int, ...], str], ...]
    single: bool


class ForkedWorkers(Executor):
    """``count`` worker processes forked from this one, each run through ``initializer`` first; arrays among a
    task's arguments, and with ``slot_results`` in its result, go through ``slots`` shared slots of
    ``slot_bytes`` each (module docstring). ``submit`` is thread-safe; ``shutdown(cancel_futures=True)`` makes
    the workers skip the tasks still queued (their futures are cancelled) and finish the one each is running.

    >>> with ForkedWorkers(2, slot_bytes=1 << 16, slots=4) as pool:
    ...     pool.submit(np.add, np.arange(4), 1).result().tolist()
    [1, 2, 3, 4]
    """

    def __init__(
        self,
        count: int,
        slot_bytes: int = 0,
        slots: int = 0,
        slot_results: bool = True,
        initializer: Callable[[], None] | None = None,
    ) -> None:
        if not FORK:
            raise TaskfuseError("worker processes need the fork start method, which this platform does not offer")
        context = multiprocessing.get_context("fork")
        self._slot_bytes = math.ceil(slot_bytes / _ALIGN) * _ALIGN if slots else 0
        self._memory = mmap.mmap(-1, _ALIGN + slots * self._slot_bytes)
        self._free: deque[int] = deque(range(slots))
        self._slot_results = slot_results
        tasks_in, self._tasks_out = context.Pipe(duplex=False)
        self._results_in, results_out = context.Pipe(duplex=False)
        task_lock, result_lock = context.Lock(), context.Lock()
        shared = (self._memory, self._slot_bytes, tasks_in, task_lock, results_out, result_lock, initializer)
        self._processes = [context.Process(target=_serve, args=shared, daemon=True) for _ in range(count)]
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "This process .* is multi-threaded", DeprecationWarning)
            for process in self._processes:
                process.start()
        tasks_in.close()
        results_out.close()
        self._send = threading.Lock()
        self._pending: dict[int, tuple[Future, list[int], int | None]] = {}
        """Each task sent and not yet settled: its future, the slots it holds, the slot reserved for its result."""
        self._ids = itertools.count()
        self._broken: str | None = None
        self._closed = False
        self._collector = threading.Thread(target=self._collect, name="taskfuse-workers", daemon=True)
        self._collector.start()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        """Run ``fn(*args, **kwargs)`` in a worker; ``fn`` and what is not an array in slots must pickle."""
        if self._broken or self._closed:
            raise TaskfuseError(self._broken or "the worker processes were shut down")
        future: Future = Future()
        held: list[int] = []
        sent = tuple(self._to_slot(a, held) if isinstance(a, np.ndarray) else a for a in args)
        result_slot = self._take() if self._slot_results else None
        if result_slot is not None:
            held.append(result_slot)
        with self._send:
            task_id = next(self._ids)
            self._pending[task_id] = (future, held, result_slot)
            try:
                self._tasks_out.send((task_id, fn, sent, kwargs, result_slot))
            except BaseException:
                del self._pending[task_id]
                self._free.extend(held)
                raise
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop taking tasks; with ``cancel_futures`` skip the queued ones; with ``wait`` return once every worker
        has finished its running task and ended."""
        with self._send:
            if not self._closed:
                self._closed = True
                if cancel_futures:
                    self._memory[_CANCEL] = 1
                for _ in self._processes:
                    try:
                        self._tasks_out.send(None)
                    except OSError:
                        break
        if wait:
            for process in self._processes:
                process.join()
            self._collector.join()

    def _take(self) -> int | None:
        try:
            return self._free.popleft()
        except IndexError:
            return None

    def _to_slot(self, array: np.ndarray, held: list[int]) -> np.ndarray | _InSlot:
        """``array`` copied into a free slot, or as it is where it does not fit or none is free."""
        if array.nbytes > self._slot_bytes or array.dtype.hasobject:
            return array
        slot = self._take()
        if slot is None:
            return array
        held.append(slot)
        return _store(self._memory, self._slot_bytes, slot, array)

    def _collect(self) -> None:
        """Resolve each task's future from the results pipe until every worker has ended; if one ends before it
        was asked to, fail every waiting future."""
        alive = {process.sentinel: process for process in self._processes}
        sources: list[Any] = [self._results_in]
        while alive or sources:
            for ready in wait(sources + list(alive)):
                if ready is self._results_in:
                    try:
                        self._resolve(*self._results_in.recv())
                    except EOFError:
                        sources.clear()
                    continue
                process = alive.pop(ready)
                process.join()
                if not self._closed or process.exitcode:
                    self._fail(f"a worker process ended unexpectedly (exit code {process.exitcode})", broken=True)
        self._fail("the worker processes were shut down")

    def _resolve(self, task_id: int, ok: bool | None, value: Any) -> None:
        """Settle a task's future: its result (``ok``), its error, or cancelled (``ok`` None: skipped)."""
        entry = self._pending.pop(task_id, None)
        if entry is None:
            return
        future, held, _ = entry
        if isinstance(value, _InSlot):
            held.remove(value.slot)
            value = self._views(value)
        self._free.extend(held)
        if future.cancelled():
            return
        if ok is None:
            future.cancel()
        elif ok:
            future.set_result(value)
        else:
            future.set_exception(value)

    def _views(self, stored: _InSlot) -> np.ndarray | tuple[np.ndarray, ...]:
        """The arrays of a result slot, as views that give the slot back once the last of them is gone."""
        base = np.frombuffer(self._memory, np.uint8, self._slot_bytes, _ALIGN + stored.slot * self._slot_bytes)
        weakref.finalize(base, self._free.append, stored.slot)
        arrays = tuple(_view(base, *layout) for layout in stored.arrays)
        return arrays[0] if stored.single else arrays

    def _fail(self, why: str, broken: bool = False) -> None:
        """Fail every waiting future with ``why``; ``broken``: and every later ``submit``."""
        if broken:
            self._broken = self._broken or why
        for task_id in list(self._pending):
            entry = self._pending.pop(task_id, None)
            if entry is not None:
                self._free.extend(entry[1])
                if not entry[0].done():
                    entry[0].set_exception(TaskfuseError(why))


def _view(base: np.ndarray, offset: int, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    size = math.prod(shape) * np.dtype(dtype).itemsize
    return base[offset : offset + size].view(dtype).reshape(shape)


def _store(memory: mmap.mmap, slot_bytes: int, slot: int, value: Any) -> Any:
    """``value`` (an array or a tuple of arrays) copied into ``slot``, as its ``_InSlot``; ``value`` itself when it
    is neither or does not fit."""
    single = isinstance(value, np.ndarray)
    arrays = (value,) if single else value
    if not isinstance(arrays, tuple) or not all(isinstance(a, np.ndarray) and not a.dtype.hasobject for a in arrays):
        return value
    offsets = [0]
    for array in arrays:
        offsets.append(offsets[-1] + math.ceil(array.nbytes / _ALIGN) * _ALIGN)
    if offsets[-1] > slot_bytes:
        return value
    base = np.frombuffer(memory, np.uint8, slot_bytes, _ALIGN + slot * slot_bytes)
    layout = []
    for offset, array in zip(offsets, arrays, strict=False):
        _view(base, offset, array.shape, array.dtype.str)[...] = array
        layout.append((offset, array.shape, array.dtype.str))
    return _InSlot(slot, tuple(layout), single)


def _serve(
    memory: mmap.mmap,
    slot_bytes: int,
    tasks: Connection,
    task_lock: Any,
    results: Connection,
    result_lock: Any,
    initializer: Callable[[], None] | None,
) -> None:
    """A worker: run tasks until told to stop, skipping those queued once the pool is cancelled."""
    if initializer is not None:
        initializer()
    base = np.frombuffer(memory, np.uint8)
    while True:
        with task_lock:
            task = tasks.recv()
        if task is None:
            return
        task_id, fn, args, kwargs, result_slot = task
        if memory[_CANCEL]:
            reply: tuple[int, bool | None, Any] = (task_id, None, None)
        else:
            try:
                args = tuple(_arguments(base, slot_bytes, a) for a in args)
                value = fn(*args, **kwargs)
                if result_slot is not None:
                    value = _store(memory, slot_bytes, result_slot, value)
                reply = (task_id, True, value)
            except BaseException as e:
                reply = (task_id, False, e)
        try:
            data = pickle.dumps(reply)
        except Exception as e:
            data = pickle.dumps((task_id, False, TaskfuseError(f"{type(e).__name__}: {e}")))
        with result_lock:
            results.send_bytes(data)


def _arguments(base: np.ndarray, slot_bytes: int, value: Any) -> Any:
    """An argument as the task takes it: arrays in slots as views of the shared memory."""
    if not isinstance(value, _InSlot):
        return value
    start = _ALIGN + value.slot * slot_bytes
    return _view(base[start : start + slot_bytes], *value.arrays[0])

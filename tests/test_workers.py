"""``taskfuse.workers.ForkedWorkers``: arrays through shared slots or the pipe, errors, dead workers, cancelling."""

from __future__ import annotations

import gc
import mmap
import multiprocessing
import os
import threading
import time
from concurrent.futures import CancelledError

import numpy as np
import pytest

from taskfuse import workers
from taskfuse.errors import TaskfuseError
from taskfuse.workers import ForkedWorkers

pytestmark = pytest.mark.skipif(not workers.FORK, reason="worker processes are forked")


def halves(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return a[: len(a) // 2] * 2, a[len(a) // 2 :].astype(np.float32) + 0.5


def in_shared_memory(a: np.ndarray) -> bool:
    """Whether the worker found ``a`` in the shared memory map (a slot) rather than unpickled."""
    while isinstance(a, np.ndarray):
        a = a.base
    return isinstance(a, memoryview) and isinstance(a.obj, mmap.mmap)


def fail(message: str) -> None:
    raise ValueError(message)


def die() -> None:
    os._exit(3)


def nap(seconds: float, mark: str) -> str:
    time.sleep(seconds)
    return mark


def test_arrays_come_back_through_slots_that_return_once_their_views_are_gone() -> None:
    a = np.arange(1000, dtype=np.int64)
    with ForkedWorkers(2, slot_bytes=1 << 14, slots=3) as pool:
        low, high = pool.submit(halves, a).result()
        assert low.tolist() == (a[:500] * 2).tolist() and high.tolist() == (a[500:] + 0.5).tolist()
        assert high.dtype == np.float32 and len(pool._free) == 2, "the result holds its slot"
        del low
        gc.collect()
        assert len(pool._free) == 2, "a view still holds the slot"
        del high
        assert len(pool._free) == 3


def test_arguments_go_through_slots_and_what_does_not_fit_through_the_pipe() -> None:
    small, large = np.ones((8, 8), np.uint8), np.ones((200, 200), np.uint8)
    with ForkedWorkers(1, slot_bytes=1024, slots=2) as pool:
        assert pool.submit(in_shared_memory, small).result(), "a small argument is read from its slot"
        assert not pool.submit(in_shared_memory, large).result(), "a large one is unpickled in the worker"
        assert pool.submit(np.sum, large).result() == 40000
        big = pool.submit(np.multiply, large, 3).result()
        assert not in_shared_memory(big) and int(big.sum()) == 120000, "a large result comes through the pipe"
        assert len(pool._free) == 2


def test_every_task_is_done_when_no_slot_is_free() -> None:
    with ForkedWorkers(2, slot_bytes=256, slots=1) as pool:
        futures = [pool.submit(np.multiply, np.full(16, i, np.int32), 2) for i in range(12)]
        kept = [f.result() for f in futures]
        assert [int(k[0]) for k in kept] == [2 * i for i in range(12)]
        assert sum(map(in_shared_memory, kept)) <= 1, "one slot, held by at most one kept result"
        del kept
        assert in_shared_memory(pool.submit(np.full, 4, 7).result()), "the slot is free again"


def test_submit_from_many_threads() -> None:
    results: dict[int, int] = {}
    with ForkedWorkers(2, slot_bytes=1024, slots=4) as pool:

        def submit(i: int) -> None:
            results[i] = int(pool.submit(np.add, np.full(10, i), 1).result().sum())

        threads = [threading.Thread(target=submit, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert results == {i: 10 * (i + 1) for i in range(16)}


def test_errors_raise_from_the_future_and_the_workers_go_on() -> None:
    with ForkedWorkers(2) as pool:
        with pytest.raises(ValueError, match="broken.png: cannot decode"):
            pool.submit(fail, "broken.png: cannot decode").result()
        assert pool.submit(nap, 0, "next").result() == "next"


def test_a_dead_worker_fails_the_waiting_futures_and_later_ones() -> None:
    pool = ForkedWorkers(1)
    with pytest.raises(TaskfuseError, match=r"worker process ended unexpectedly \(exit code 3\)"):
        pool.submit(die).result(timeout=30)
    with pytest.raises(TaskfuseError, match="ended unexpectedly"):
        pool.submit(nap, 0, "late")
    pool.shutdown()
    assert not multiprocessing.active_children()


def test_shutdown_cancels_queued_tasks_and_finishes_running_ones() -> None:
    pool = ForkedWorkers(1)
    running = pool.submit(nap, 0.5, "done")
    time.sleep(0.2)
    queued = [pool.submit(nap, 0, str(i)) for i in range(5)]
    pool.shutdown(wait=True, cancel_futures=True)
    assert running.result() == "done"
    for future in queued:
        with pytest.raises(CancelledError):
            future.result(timeout=5)
    assert not multiprocessing.active_children()
    with pytest.raises(TaskfuseError, match="shut down"):
        pool.submit(nap, 0, "after")


def test_without_fork_it_says_so(monkeypatch) -> None:
    monkeypatch.setattr(workers, "FORK", False)
    with pytest.raises(TaskfuseError, match="fork start method"):
        ForkedWorkers(1)

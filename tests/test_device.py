"""``taskfuse.device.reuse_freed_memory``: the allocator settings apply where glibc is, stay away where the
environment tunes the allocator itself, and keep the default network's passes free of page faults."""

from __future__ import annotations

import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

from taskfuse import device

FAULTS = """
import resource, sys, torch
from taskfuse.device import reuse_freed_memory
from taskfuse.inference import load
applied = reuse_freed_memory() if sys.argv[1] == "reuse" else False
model = load(device="cpu")
ir, vi = torch.rand(1, 1, 120, 160), torch.rand(1, 3, 120, 160)
for _ in range(2):
    model.fuse_batch(ir, vi)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(16):
    model.fuse_batch(ir, vi)
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""
"""Minor page faults of 16 passes of the default network after two, in a fresh process. With freed memory reused
only a few hundred faults remain, once (the allocator's first growth); by default every pass faults thousands of
pages, so more passes widen the gap."""


def _faults(mode: str) -> tuple[bool, int]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "LD_PRELOAD"}
    done = subprocess.run([sys.executable, "-c", FAULTS, mode], capture_output=True, text=True, env=env, check=True)
    applied, faults = done.stdout.split()
    return applied == "True", int(faults)


@pytest.mark.parametrize("variable", ["MALLOC_ARENA_MAX", "MALLOC_TOP_PAD_"])
def test_an_allocator_tuned_by_the_environment_is_left_alone(monkeypatch: pytest.MonkeyPatch, variable: str) -> None:
    monkeypatch.setenv(variable, "2")
    assert device.reuse_freed_memory() is False


def test_a_preloaded_allocator_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in os.environ if k.startswith("MALLOC_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("LD_PRELOAD", "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2")
    assert device.reuse_freed_memory() is False


def test_other_systems_are_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(device, "sys", SimpleNamespace(platform="darwin"))
    assert device.reuse_freed_memory() is False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator runs on Linux")
def test_the_network_passes_without_page_faults_once_freed_memory_is_reused() -> None:
    applied, reused = _faults("reuse")
    _, default = _faults("default")
    if not applied:
        pytest.skip("this Linux's C library has no mallopt that takes the settings (not glibc)")
    assert default > 1000
    assert reused < default / 20


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA GPU")
def test_graph_replay_equals_eager_per_signature_and_falls_back_where_capture_fails() -> None:
    calls: list[tuple[int, ...]] = []

    def blur(x: torch.Tensor) -> torch.Tensor:
        calls.append(tuple(x.shape))
        return torch.nn.functional.avg_pool2d(x, 3, 1, 1) * 2 + 1

    replay = device.GraphReplay(blur, keep=1)
    big = [torch.rand(2, 3, 16, 16, device="cuda") for _ in range(3)]
    small = [torch.rand(1, 3, 8, 8, device="cuda") for _ in range(2)]
    for x in [*big, *small, big[0]]:
        assert torch.equal(replay(x).clone(), blur(x)), tuple(x.shape)
    assert list(replay.graphs) == [(((2, 3, 16, 16), torch.float32, big[0].device),)], "keep=1 holds the last graph"
    assert calls.count((2, 3, 16, 16)) == 3 + 4, "one eager call, two captures (the second after eviction), 4 checks"

    def waits_for_the_host(x: torch.Tensor) -> torch.Tensor:
        return x * float(x.sum())

    fallback = device.GraphReplay(waits_for_the_host)
    x = torch.rand(4, device="cuda")
    assert torch.allclose(fallback(x), waits_for_the_host(x))
    with pytest.warns(device.EagerReplayWarning, match="waits_for_the_host runs eagerly"):
        assert torch.allclose(fallback(x), waits_for_the_host(x))
    assert torch.allclose(fallback(x), waits_for_the_host(x))
    assert list(fallback.graphs.values()) == [None]

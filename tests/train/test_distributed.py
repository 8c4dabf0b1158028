"""DistributedDataParallel on CPU: two gloo processes with batch b train exactly like one with batch 2b, with DDP's
default settings, with the speed options (static graph, small gradient buckets, channels_last, torch.compile), with
a loss that leaves an output of the network unused (``fusion_only``), and with a strategy whose network uses other
parameters from step to step (``mixed``: the static graph is left off); the CPU threads each process of a torchrun
launch gets."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.multiprocessing as mp
from train_helpers import ddp_worker, tiny_config

from taskfuse.models.weights import load_weights
from taskfuse.train import distributed
from taskfuse.train.log import read_metrics
from taskfuse.train.loop import train
from taskfuse.train.resolve import validate

UNLABELLED = {"name": "synthetic", "length": 8, "height": 40, "width": 40, "seed": 4}
SETTINGS = {
    "ddp defaults": ({}, {}),
    "static graph, 1 KiB buckets, channels_last": (
        {"ddp_static_graph": True, "ddp_bucket_mb": 0.001, "channels_last": True},
        {},
    ),
    "compiled": ({"compile": True}, {}),
    "fusion_only: the semantic head unused by the loss": ({"strategy": "fusion_only"}, {}),
    "mixed strategy with static graph asked for": (
        {"strategy": "mixed", "ddp_static_graph": True},
        {"unlabelled": UNLABELLED},
    ),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SETTINGS))
def test_two_gloo_processes_match_one_process_with_twice_the_batch(tmp_path: Path, name: str) -> None:
    steps = 4
    options, data = SETTINGS[name]
    single = train(
        validate(tiny_config(steps, train={**options, "batch_size": 4}, data=data)), tmp_path / "one", device="cpu"
    )
    cfg = tiny_config(steps, train={**options, "batch_size": 2}, data=data)
    mp.spawn(ddp_worker, args=(2, free_port(), cfg, str(tmp_path / "two")), nprocs=2, join=True)
    (run,) = (tmp_path / "two").iterdir()

    one, two = read_metrics(single.run_dir / "metrics.csv"), read_metrics(run / "metrics.csv")
    assert set(one) == set(two)
    for key in set(one) - {"train/img_s"}:
        assert two[key] == pytest.approx(one[key], rel=1e-4), key
    wa, wb = load_weights(single.run_dir / "fusion.safetensors"), load_weights(run / "fusion.safetensors")
    assert all(torch.allclose(wa[k], wb[k], atol=1e-5) for k in wa)
    assert (run / "checkpoints").is_dir() and len(list((run / "checkpoints").iterdir())) == 2


def test_torchrun_default_of_one_thread_is_replaced_and_a_users_choice_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parent = tmp_path / "environ"
    parent.write_bytes(b"PATH=/usr/bin\0HOME=/root\0")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert not distributed.threads_given(parent)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert not distributed.threads_given(parent)  # torchrun's own default
    parent.write_bytes(b"PATH=/usr/bin\0OMP_NUM_THREADS=1\0")
    assert distributed.threads_given(parent)  # given to torchrun by the user
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    assert distributed.threads_given(tmp_path / "missing")


def test_each_process_of_a_launch_gets_its_share_of_the_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    threads: list[int] = []
    monkeypatch.setattr(torch, "set_num_threads", threads.append)
    monkeypatch.setattr(distributed, "available_cpus", lambda: 16)
    monkeypatch.setattr(distributed, "threads_given", lambda: False)
    monkeypatch.setattr(distributed.dist, "is_initialized", lambda: True)
    env: dict[str, Any] = {"WORLD_SIZE": "8", "RANK": "5", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "4"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    info = distributed.setup("cpu")
    assert (info.rank, info.world, info.local_world) == (5, 8, 4) and threads == [4]
    monkeypatch.setattr(distributed, "threads_given", lambda: True)
    distributed.setup("cpu")
    assert threads == [4]

"""DistributedDataParallel on CPU: two gloo processes with batch b train exactly like one with batch 2b."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from train_helpers import ddp_worker, tiny_config

from taskfuse.models.weights import load_weights
from taskfuse.train.log import read_metrics
from taskfuse.train.loop import train
from taskfuse.train.resolve import validate


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_gloo_processes_match_one_process_with_twice_the_batch(tmp_path: Path) -> None:
    steps = 4
    single = train(validate(tiny_config(steps, train={"batch_size": 4})), tmp_path / "one", device="cpu")
    cfg = tiny_config(steps, train={"batch_size": 2})
    mp.spawn(ddp_worker, args=(2, free_port(), cfg, str(tmp_path / "two")), nprocs=2, join=True)
    (run,) = (tmp_path / "two").iterdir()

    one, two = read_metrics(single.run_dir / "metrics.csv"), read_metrics(run / "metrics.csv")
    curve = [two["train/total"][s] for s in range(1, steps + 1)]
    assert curve == pytest.approx([one["train/total"][s] for s in range(1, steps + 1)], rel=1e-4)
    wa, wb = load_weights(single.run_dir / "fusion.safetensors"), load_weights(run / "fusion.safetensors")
    assert all(torch.allclose(wa[k], wb[k], atol=1e-5) for k in wa)
    assert (run / "checkpoints").is_dir() and len(list((run / "checkpoints").iterdir())) == 2

"""Resumable sampling and augmentation, the process split, collation; learning-rate schedules and optimisers."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch.utils.data import Dataset

from taskfuse.data.batching import EpochBatches, collate
from taskfuse.errors import TaskfuseError
from taskfuse.train.config import DataConfig, PhaseConfig
from taskfuse.train.data import Stream, loader_workers
from taskfuse.train.optim import Optimised, lr_at


class Ramp(Dataset):
    """Sample i: images holding i + pixel position, so crops and flips are visible in the values."""

    def __init__(self, n: int = 10, size: int = 12) -> None:
        self.n, self.size = n, size

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        base = torch.arange(self.size * self.size, dtype=torch.float32).view(1, self.size, self.size) / 1000
        return {
            "ir": base + i,
            "vi": (base + i).expand(3, -1, -1).clone(),
            "label": torch.full((12, 12), i % 9),
            "name": f"s{i}",
        }


def test_every_epoch_is_a_permutation_and_resumes_mid_epoch() -> None:
    full = list(itertools.islice(iter(EpochBatches(10, 3, seed=5)), 9))  # 3 batches per epoch, 3 epochs
    for e in range(3):
        seen = [i for batch in full[3 * e : 3 * e + 3] for i, epoch in batch if epoch == e]
        assert len(set(seen)) == 9 and set(seen) <= set(range(10))
    assert full[0] != full[3]  # reshuffled
    resumed = list(itertools.islice(iter(EpochBatches(10, 3, seed=5, epoch=1, position=2)), 4))
    assert resumed == full[5:9]


def test_two_processes_split_each_batch_of_one() -> None:
    one = list(itertools.islice(iter(EpochBatches(11, 4, seed=1)), 4))
    ranks = [list(itertools.islice(iter(EpochBatches(11, 2, seed=1, rank=r, world=2)), 4)) for r in (0, 1)]
    for step in range(2):  # the first epoch: 5 samples per process, 2 batches of 2
        assert sorted(ranks[0][step] + ranks[1][step]) == sorted(one[step])


def test_stream_resumes_with_the_same_augmented_batches() -> None:
    data, phase = (
        DataConfig(flip=True, rotate90=True, scale=(0.8, 1.2), workers=0),
        PhaseConfig(batch_size=3, crop=8),
    )
    a = Stream(Ramp(), phase, data, seed=3, rank=0, world=1, device=torch.device("cpu"))
    batches = [a.next() for _ in range(7)]
    b = Stream(Ramp(), phase, data, seed=3, rank=0, world=1, device=torch.device("cpu"))
    for _ in range(4):
        b.next()
    c = Stream(Ramp(), phase, data, seed=3, rank=0, world=1, device=torch.device("cpu"))
    c.load_state_dict(b.state_dict())
    for want in batches[4:]:
        got = c.next()
        assert got["name"] == want["name"]
        assert torch.equal(got["ir"], want["ir"]) and torch.equal(got["label"], want["label"])
    assert batches[0]["ir"].shape == (3, 1, 8, 8) and batches[0]["vi"].shape == (3, 3, 8, 8)
    assert a.state_dict() == {"epoch": 2, "position": 1}


def test_collate_refuses_mixed_sizes_and_keeps_boxes_as_lists() -> None:
    small, big = Ramp(size=12)[0], Ramp(size=12)[1]
    big["ir"] = torch.zeros(1, 10, 12)
    with pytest.raises(TaskfuseError, match="train.crop"):
        collate([small, big])
    small["boxes"] = torch.zeros(2, 5)
    batch = collate([small, Ramp()[2]])
    assert batch["label"].dtype == torch.int64 and [b.shape[0] for b in batch["boxes"]] == [2, 0]


def test_too_small_a_dataset_is_an_error() -> None:
    with pytest.raises(TaskfuseError, match="lower train.batch_size"):
        EpochBatches(3, 2, seed=0, world=2)


def test_auto_workers_leave_a_cpu_for_training(monkeypatch: pytest.MonkeyPatch) -> None:
    assert loader_workers(3) == 3
    for cpus, world, workers in ((1, 1, 0), (2, 1, 1), (16, 1, 8), (16, 2, 7), (64, 8, 7)):
        monkeypatch.setattr("os.sched_getaffinity", lambda _, n=cpus: set(range(n)), raising=False)
        assert loader_workers("auto", world) == workers


def test_schedules() -> None:
    poly = PhaseConfig(lr=1e-2, lr_schedule="poly", poly_power=0.9, warmup_iters=10, warmup_start_lr=1e-5)
    assert lr_at(poly, 0, 100, 5) == pytest.approx(1e-5)
    assert lr_at(poly, 5, 100, 5) == pytest.approx((1e-5 * 1e-2) ** 0.5)  # geometric mid-point of the ramp
    assert lr_at(poly, 10, 100, 5) == pytest.approx(1e-2)
    assert lr_at(poly, 55, 100, 5) == pytest.approx(1e-2 * 0.5**0.9)
    assert lr_at(poly, 100, 100, 5) == 0.0
    step = PhaseConfig(lr=1e-3, lr_schedule="step", lr_decay=0.75)
    assert [lr_at(step, t, 40, 10) for t in (0, 9, 10, 25)] == pytest.approx([1e-3, 1e-3, 7.5e-4, 1e-3 * 0.75**2])


@pytest.mark.parametrize("kind", ["sgd", "adam", "adamw"])
def test_a_resumed_optimiser_keeps_its_own_choice_of_fused_update(kind: str) -> None:
    cfg = PhaseConfig(optimizer=kind, lr=1e-2)
    net = torch.nn.Linear(3, 2)
    saved = Optimised(net.parameters(), cfg, 10, 5)
    assert saved.optimizer.defaults["fused"] is None  # CPU parameters: PyTorch's default update
    net(torch.rand(4, 3)).sum().backward()
    saved.optimizer.step()
    state = saved.state_dict()
    for group in state["param_groups"]:
        group["fused"] = True  # as a GPU run saves it
    resumed = Optimised(net.parameters(), cfg, 10, 5)
    resumed.load_state_dict(state)
    assert [g["fused"] for g in resumed.optimizer.param_groups] == [None]
    assert resumed.optimizer.state_dict()["state"].keys() == state["state"].keys()

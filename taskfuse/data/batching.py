"""Sampling and batching shared by training and the downstream protocol.

Order and augmentation are pure functions of ``(seed, epoch, index)``: epoch ``e`` visits the samples in the
permutation drawn from ``seed`` and ``e`` (``EpochBatches``), and sample ``i`` of epoch ``e`` is augmented with a
generator seeded from ``(seed, e, i)`` (``Augmented``). A run therefore resumes exactly from two numbers (epoch,
batches consumed), with any number of worker processes. With several processes each takes every ``world``-th
sample of the permutation, so one step of ``world`` processes with batch ``b`` sees the same images as one
process with batch ``world * b``; the last ``n mod world`` samples of each permutation are left out so that
every process has as many.

Batches are dicts (``collate``): ``ir`` (B, 1, H, W), ``vi`` (B, 3, H, W), ``label`` (B, H, W) int64 when every
sample has one (255 = ignore), ``boxes`` / ``keypoints`` lists of per-image tensors when the samples have them,
``name`` a list.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset, Sampler

from taskfuse.data import transforms as T
from taskfuse.errors import TaskfuseError

_MIX = 1_000_003


def sample_seed(seed: int, epoch: int, index: int) -> int:
    return ((seed * _MIX + epoch) * _MIX + index) % (2**63)


class Augmented(Dataset):
    """Items keyed ``(index, epoch)``: sample ``index`` with its augmentation for that epoch; optional cache
    of decoded samples (kept per worker process)."""

    def __init__(self, dataset: Dataset, transform: T.Compose | None, seed: int, cache: bool) -> None:
        self.dataset, self.transform, self.seed = dataset, transform, seed
        self.cache: dict[int, dict[str, Any]] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Any]:
        index, epoch = key
        if self.cache is not None and index in self.cache:
            sample = self.cache[index]
        else:
            sample = self.dataset[index]
            if self.cache is not None:
                self.cache[index] = sample
        if self.transform is None:
            return sample
        return self.transform(sample, torch.Generator().manual_seed(sample_seed(self.seed, epoch, index)))


class EpochBatches(Sampler):
    """Endless batches of ``(index, epoch)`` for one process, starting at batch ``position`` of ``epoch``."""

    def __init__(
        self, n: int, batch: int, seed: int, rank: int = 0, world: int = 1, epoch: int = 0, position: int = 0
    ) -> None:
        self.n, self.batch, self.seed, self.rank, self.world = n, batch, seed, rank, world
        self.epoch, self.position = epoch, position
        self.per_epoch = (n // world) // batch
        if self.per_epoch == 0:
            raise TaskfuseError(
                f"the training set has {n} samples, fewer than batch_size {batch} x {world} process(es); "
                "lower train.batch_size or use more data"
            )

    def order(self, epoch: int) -> list[int]:
        """This process's samples of ``epoch``, in visiting order."""
        perm = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed * _MIX + epoch)).tolist()
        usable = (self.n // self.world) * self.world
        return perm[self.rank : usable : self.world]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        epoch, position = self.epoch, self.position
        while True:
            order = self.order(epoch)
            for b in range(position, self.per_epoch):
                yield [(i, epoch) for i in order[b * self.batch : (b + 1) * self.batch]]
            epoch, position = epoch + 1, 0

    def __len__(self) -> int:
        return self.per_epoch


def collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack images (and labels when every sample has one); boxes, keypoints and names as lists."""
    shapes = {tuple(s["ir"].shape) for s in samples}
    if len(shapes) > 1:
        raise TaskfuseError(
            f"a batch mixes image sizes {sorted(shapes)}; set train.crop (or data.val_batch_size: 1 for validation)"
        )
    batch: dict[str, Any] = {
        "ir": torch.stack([s["ir"] for s in samples]),
        "vi": torch.stack([s["vi"].expand(3, -1, -1) for s in samples]),
        "name": [s.get("name", "") for s in samples],
    }
    if all("label" in s for s in samples):
        batch["label"] = torch.stack([s["label"] for s in samples]).long()
    for key in ("boxes", "keypoints"):
        if any(key in s for s in samples):
            batch[key] = [s.get(key, torch.zeros(0, 5)) for s in samples]
    return batch


def to_device(batch: dict[str, Any], device: torch.device, channels_last: bool = False) -> dict[str, Any]:
    """``batch`` on ``device``; copies from pinned memory overlap with the device's work. ``channels_last`` lays
    the images (the 4-D tensors) out as NHWC on the device, after the copy."""

    def move(x: Any) -> Any:
        if isinstance(x, Tensor):
            x = x.to(device, non_blocking=True)
            return x.contiguous(memory_format=torch.channels_last) if channels_last and x.dim() == 4 else x
        if isinstance(x, list):
            return [move(v) for v in x]
        return x

    return {k: move(v) for k, v in batch.items()}

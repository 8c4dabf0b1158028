"""Training data: datasets from the config, paired augmentation, resumable sampling, batches on the device.

Order and augmentation are pure functions of ``(seed, epoch, index)``: epoch ``e`` visits the samples in the
permutation drawn from ``seed`` and ``e``, and sample ``i`` of epoch ``e`` is augmented with a generator
seeded from ``(seed, e, i)``. A ``Stream`` therefore resumes exactly from two numbers (epoch, batches
consumed), with any number of worker processes. With several processes (torchrun) each takes every
``world``-th sample of the permutation, so one step of ``world`` processes with batch ``b`` sees the same
images as one process with batch ``world * b``; the last ``n mod world`` samples of each permutation are left
out so that every process has as many.

Batches are dicts: ``ir`` (B, 1, H, W), ``vi`` (B, 3, H, W), ``label`` (B, H, W) int64 when every sample has
one (255 = ignore), ``boxes`` a list of (N, 5) tensors when the samples have boxes, ``name`` a list.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler, Subset

from taskfuse.data import transforms as T
from taskfuse.errors import TaskfuseError
from taskfuse.train.config import DataConfig, DatasetConfig, PhaseConfig

_MIX = 1_000_003


def build_dataset(spec: DatasetConfig, where: str) -> Dataset:
    """The dataset a ``DatasetConfig`` describes (``where`` names the config key in errors)."""
    if spec.name == "synthetic":
        from taskfuse.data.synthetic import SceneConfig, SyntheticScenes

        try:
            scene = SceneConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in spec.options.items()})
        except TypeError as e:
            raise TaskfuseError(f"{where}.options: {e}; the keys are SceneConfig fields (docs/synthetic.md)") from e
        ds: Dataset = SyntheticScenes(spec.length, spec.seed, spec.height, spec.width, scene)
    else:
        from taskfuse.data.datasets import open_dataset

        if not spec.root:
            raise TaskfuseError(f"{where}.root: give the {spec.name} dataset folder, e.g. --set {where}.root=/data/X")
        ds = open_dataset(spec.name, spec.root, spec.split or None, **spec.options)
    if spec.limit > 0:
        ds = Subset(ds, range(min(spec.limit, len(ds))))  # type: ignore[arg-type]
    if len(ds) == 0:  # type: ignore[arg-type]
        raise TaskfuseError(f"{where}: the dataset is empty; check root, split and limit")
    return ds


def build_transform(cfg: DataConfig, crop: int | tuple[int, int] | str) -> T.Compose:
    """Random scale, quarter turns, flip, then the crop (last, so every crop has the configured size)."""
    steps: list[Any] = []
    if cfg.scale is not None:
        steps.append(T.RandomScale(*cfg.scale))
    if cfg.rotate90:
        steps.append(T.RandomRotate90())
    if cfg.flip:
        steps.append(T.HorizontalFlip(0.5))
    if crop != "full":
        steps.append(T.RandomCrop(crop))  # type: ignore[arg-type]
    return T.Compose(steps)


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


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    def move(x: Any) -> Any:
        if isinstance(x, Tensor):
            return x.to(device, non_blocking=True)
        if isinstance(x, list):
            return [move(v) for v in x]
        return x

    return {k: move(v) for k, v in batch.items()}


class Stream:
    """Endless training batches of one dataset for one process, with the batch size and crop of ``phase``;
    ``state_dict`` is (epoch, position); ``served`` counts the images handed out (for throughput)."""

    def __init__(
        self,
        dataset: Dataset,
        phase: PhaseConfig,
        cfg: DataConfig,
        seed: int,
        rank: int,
        world: int,
        device: torch.device,
    ) -> None:
        self.data = Augmented(dataset, build_transform(cfg, phase.crop), seed, cfg.cache)
        self.phase, self.cfg, self.seed = phase, cfg, seed
        self.rank, self.world, self.device = rank, world, device
        self.epoch, self.position = 0, 0
        self.served = 0
        self.per_epoch = EpochBatches(len(self.data), phase.batch_size, seed, rank, world).per_epoch
        self._it: Iterator[dict[str, Any]] | None = None

    def _loader(self) -> Iterator[dict[str, Any]]:
        sampler = EpochBatches(
            len(self.data), self.phase.batch_size, self.seed, self.rank, self.world, self.epoch, self.position
        )
        workers = self.cfg.workers
        loader = DataLoader(
            self.data,
            batch_sampler=sampler,
            num_workers=workers,
            collate_fn=collate,
            pin_memory=self.cfg.pin_memory and self.device.type == "cuda",
            persistent_workers=workers > 0,
            prefetch_factor=4 if workers > 0 else None,
            generator=torch.Generator(),
        )
        return iter(loader)

    def next(self) -> dict[str, Any]:
        if self._it is None:
            self._it = self._loader()
        batch = next(self._it)
        self.served += len(batch["name"])
        self.position += 1
        if self.position == self.per_epoch:
            self.epoch, self.position = self.epoch + 1, 0
        return to_device(batch, self.device)

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
        self._it = None

    def close(self) -> None:
        self._it = None


def val_loader(dataset: Dataset, cfg: DataConfig) -> DataLoader:
    """Full-size validation batches in dataset order, without augmentation."""
    workers = min(cfg.workers, 2)
    return DataLoader(
        Augmented(dataset, None, 0, cfg.cache),
        batch_size=cfg.val_batch_size,
        sampler=[(i, 0) for i in range(len(dataset))],  # type: ignore[arg-type]
        num_workers=workers,
        persistent_workers=workers > 0,
        collate_fn=collate,
        generator=torch.Generator(),
    )

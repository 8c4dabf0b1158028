"""Training data from the config: the datasets a ``DatasetConfig`` names, their augmentation, and ``Stream``,
the endless resumable batches of one phase on the training device (sampling: ``taskfuse.data.batching``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Subset

from taskfuse.data import transforms as T
from taskfuse.data.batching import Augmented, EpochBatches, collate, to_device
from taskfuse.device import available_cpus
from taskfuse.errors import TaskfuseError
from taskfuse.train.config import DataConfig, DatasetConfig, PhaseConfig


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
        try:
            ds = open_dataset(spec.name, spec.root, spec.split or None, **spec.options)
        except TaskfuseError as e:
            raise TaskfuseError(f"{where} ({spec.name} at {spec.root}): {e}") from e
    if spec.limit > 0:
        ds = Subset(ds, range(min(spec.limit, len(ds))))  # type: ignore[arg-type]
    if len(ds) == 0:  # type: ignore[arg-type]
        raise TaskfuseError(f"{where}: the dataset is empty; check root, split and limit")
    if not spec.mix:
        return ds
    parts = []
    for i, m in enumerate(spec.mix):
        try:
            parts.append(build_dataset(inherit(m, spec), f"{where}.mix[{i}]"))
        except TaskfuseError as e:
            raise TaskfuseError(f"{e}; or train without it: --set {where}.mix=null") from e
    return ConcatDataset([ds, *parts])


def inherit(part: DatasetConfig, parent: DatasetConfig) -> DatasetConfig:
    """``part`` with its empty layout and split taken from ``parent`` (a mixed-in set reads like its parent)."""
    return dataclasses.replace(part, name=part.name or parent.name, split=part.split or parent.split)


def loader_workers(setting: int | str, processes: int = 1) -> int:
    """DataLoader worker processes for ``data.workers``: the number given, or for ``auto`` the CPUs this process
    may use, divided among the ``processes`` training processes on this machine, less one for the training
    itself, at most 8."""
    if setting != "auto":
        return int(setting)
    return max(0, min(8, available_cpus() // processes - 1))


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


class Stream:
    """Endless training batches of one dataset for one process, with the batch size and crop of ``phase``;
    ``state_dict`` is (epoch, position); ``served`` counts the images handed out (for throughput).

    Batches are assembled by ``data.workers`` worker processes (shared among the ``processes`` training processes
    of this machine when ``auto``), in page-locked memory on CUDA (``data.pin_memory``), and copied to the device
    without waiting; ``channels_last`` lays the images out as NHWC there (``train.channels_last``)."""

    def __init__(
        self,
        dataset: Dataset,
        phase: PhaseConfig,
        cfg: DataConfig,
        seed: int,
        rank: int,
        world: int,
        device: torch.device,
        processes: int = 1,
        channels_last: bool = False,
    ) -> None:
        self.data = Augmented(dataset, build_transform(cfg, phase.crop), seed, cfg.cache)
        self.phase, self.cfg, self.seed = phase, cfg, seed
        self.rank, self.world, self.device = rank, world, device
        self.processes, self.channels_last = processes, channels_last
        self.epoch, self.position = 0, 0
        self.served = 0
        self.per_epoch = EpochBatches(len(self.data), phase.batch_size, seed, rank, world).per_epoch
        self._it: Iterator[dict[str, Any]] | None = None

    def _loader(self) -> Iterator[dict[str, Any]]:
        sampler = EpochBatches(
            len(self.data), self.phase.batch_size, self.seed, self.rank, self.world, self.epoch, self.position
        )
        workers = loader_workers(self.cfg.workers, self.processes)
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
        return to_device(batch, self.device, self.channels_last)

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
        self._it = None

    def close(self) -> None:
        self._it = None


def val_loader(dataset: Dataset, cfg: DataConfig) -> DataLoader:
    """Full-size validation batches in dataset order, without augmentation."""
    workers = min(loader_workers(cfg.workers), 2)
    return DataLoader(
        Augmented(dataset, None, 0, cfg.cache),
        batch_size=cfg.val_batch_size,
        sampler=[(i, 0) for i in range(len(dataset))],  # type: ignore[arg-type]
        num_workers=workers,
        persistent_workers=workers > 0,
        collate_fn=collate,
        generator=torch.Generator(),
    )

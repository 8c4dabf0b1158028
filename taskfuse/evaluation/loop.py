"""The downstream protocol, the same for every task: per input, normalise, train from one seed, test, record.

For each input (``taskfuse.evaluation.inputs``), in the order given:

1. its training images are made (IR repeated, VIS, a classical rule's fused images, or a fused folder's) and
   quantised to 8 bits, as every fused image saved to disk is, so that no row gains from finer levels; with
   ``input_norm="minmax"`` every fused image (rules and folders; IR and VIS stay as read) is first stretched
   to the full range over all its channels, ``(x - min) / (max - min)``, as the SeAFusion and PSFusion test
   scripts save the fused images their segmenters were trained on;
2. the per-channel mean and std over those training images normalise that input's images, train and test
   (the PSFusion authors' answer on how their Table 2 was made: statistics of each input's own training set);
3. ``task.build(3)`` is created right after ``torch.manual_seed(cfg.seed)``, so every input starts from the
   same weights; batches visit the samples in the permutation of ``(seed, epoch)`` and sample ``i`` of epoch
   ``e`` is augmented (flip, random crop) from the seed ``(seed, e, i)`` (``taskfuse.train.data``), so every
   input sees the same crops of the same samples in the same order; a flip swaps the left/right keypoint
   pairs of ``task.flip_pairs`` (else of the dataset's ``flip_pairs``);
4. the network trains for ``epochs`` epochs with AdamW or SGD (momentum 0.9), the learning rate rising
   linearly over the first 5 % of the steps and then decaying as ``(1 - step / total) ** 0.9`` (the "poly"
   policy of SeAFusion and PSFusion, seed 001 §4.1); the checkpoint in ``OUT/<input>/checkpoint/``
   (``model.safetensors``, ``optimizer.pt`` read back with ``weights_only=True``, ``state.json``) is replaced
   after every epoch, and an interrupted run continues from it exactly;
5. the test split is predicted at full size and scored (``task.compute``), the first ``grid`` evenly spaced
   test images are drawn (``OUT/<input>/samples/``), and ``OUT/<input>/result.json`` is written atomically.

A rerun skips inputs whose result matches the settings; a larger ``epochs`` continues training from the
checkpoint (with the schedule of the new total, so it is not the same as a fresh run of that length);
other changed settings are refused, naming them. Samples of both splits are decoded once and kept in memory
as 8-bit images. Finally ``OUT/results.json``, ``OUT/table.md`` and ``OUT/grid.png`` are written
(``taskfuse.evaluation.report``).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_model, save_model
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from taskfuse.data import transforms as T
from taskfuse.data.batching import Augmented, EpochBatches, collate, sample_seed, to_device
from taskfuse.data.io import atomic_path, write_image
from taskfuse.device import resolve_device
from taskfuse.errors import TaskfuseError
from taskfuse.evaluation.base import DownstreamTask
from taskfuse.evaluation.inputs import RESERVED, InputSource, InputSpec
from taskfuse.evaluation.report import grid_indices, write_outputs

WARMUP = 0.05
POLY_POWER = 0.9
SGD_MOMENTUM = 0.9
INPUT_NORMS = ("none", "minmax")


@dataclass
class ProtocolConfig:
    """Training and testing settings shared by every input (CLI flag in brackets).

    ``crop`` None trains on full images (they must then share one size); ``amp`` runs bfloat16 autocast on
    CUDA and is ignored on the CPU; ``grid`` is the number of test images in the qualitative grid;
    ``input_norm`` is ``none`` or ``minmax`` (step 1 of the module docstring).
    """

    epochs: int = 50
    batch_size: int = 8
    lr: float = 2e-4
    weight_decay: float = 0.01
    optimizer: str = "adamw"
    crop: int | None = None
    flip: bool = True
    seed: int = 0
    device: str = "auto"
    workers: int = 0
    amp: bool = False
    grid: int = 4
    input_norm: str = "none"

    def __post_init__(self) -> None:
        positive = {"epochs": self.epochs, "batch-size": self.batch_size, "lr": self.lr}
        for flag, value in positive.items():
            if not value > 0:
                raise TaskfuseError(f"--{flag} {value}: give a positive number")
        if self.weight_decay < 0 or self.workers < 0 or self.grid < 0:
            raise TaskfuseError("--weight-decay, --workers and --grid must not be negative")
        if self.optimizer not in ("adamw", "sgd"):
            raise TaskfuseError(f"--optimizer {self.optimizer!r}: choose adamw or sgd")
        if self.crop is not None and self.crop < 1:
            raise TaskfuseError(f"--crop {self.crop}: give a positive crop size in pixels, or leave it out")
        if self.input_norm not in INPUT_NORMS:
            raise TaskfuseError(f"--input-norm {self.input_norm!r}: choose {' or '.join(INPUT_NORMS)}")


def channel_stats(images: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
    """Mean and (population) std per channel over every pixel of ``images``: (C, H, W) uint8 (read as
    ``v / 255``) or float in [0, 1]. The std is floored at 1e-6 so a constant channel normalises to 0."""
    if not images:
        raise TaskfuseError("channel_stats needs at least one image")
    c = images[0].shape[0]
    total = torch.zeros(c, dtype=torch.float64)
    squares = torch.zeros(c, dtype=torch.float64)
    count = 0
    for img in images:
        x = img.double() / 255.0 if img.dtype == torch.uint8 else img.double()
        total += x.sum(dim=(1, 2))
        squares += (x * x).sum(dim=(1, 2))
        count += x.shape[1] * x.shape[2]
    mean = total / count
    std = (squares / count - mean * mean).clamp_min(0).sqrt()
    return mean.float(), std.float().clamp_min(1e-6)


def lr_factor(step: int, total: int) -> float:
    """Learning-rate multiplier at ``step`` of ``total``: linear warm-up over the first ``WARMUP`` of the
    steps, then ``(1 - step / total) ** POLY_POWER``."""
    warmup = max(1, round(WARMUP * total))
    return min(1.0, (step + 1) / warmup) * (1.0 - step / total) ** POLY_POWER


def _quantise(x: Tensor) -> Tensor:
    return (x.float().clamp(0, 1) * 255.0).round().to(torch.uint8)


def stretch(x: Tensor) -> Tensor:
    """``(x - min) / (max - min)`` over the whole image, all channels together; a constant image gives 0."""
    lo, hi = x.min(), x.max()
    return (x - lo) / (hi - lo).clamp_min(1e-12)


def _pack(sample: dict[str, Any]) -> dict[str, Any]:
    """A dataset sample kept small: 8-bit images, an 8-bit label when its values fit."""
    out = dict(sample)
    out["ir"], out["vi"] = _quantise(sample["ir"]), _quantise(sample["vi"])
    label = sample.get("label")
    if label is not None and label.numel() and int(label.min()) >= 0 and int(label.max()) <= 255:
        out["label"] = label.to(torch.uint8)
    return out


def _unpack(sample: dict[str, Any]) -> dict[str, Any]:
    """A packed sample as the dataset gave it: float images in [0, 1], int64 label."""
    out = dict(sample)
    out["ir"], out["vi"] = sample["ir"].float() / 255.0, sample["vi"].float() / 255.0
    if "label" in sample:
        out["label"] = sample["label"].long()
    return out


def load_samples(dataset: Dataset, what: str, workers: int, progress: bool) -> list[dict[str, Any]]:
    """Every sample of ``dataset``, decoded once (by ``workers`` processes) and packed."""
    loader = DataLoader(dataset, batch_size=None, num_workers=workers, collate_fn=_pack)
    bar = tqdm(loader, desc=f"read {what}", unit="img", disable=None if progress else True, dynamic_ncols=True)
    samples = list(bar)
    if not samples:
        raise TaskfuseError(f"the {what} split is empty; check --root and the split names")
    return samples


def _collate(items: list[dict[str, Any]]) -> tuple[Tensor, dict[str, Any]]:
    """Network inputs (B, 3, H, W) in [0, 1] and the rest of the batch as ``taskfuse.train.data.collate``
    builds it. Items hold their input image in the ``ir`` slot, where the paired transforms read the size."""
    batch = collate([{**item, "vi": item["ir"]} for item in items])
    images = batch.pop("ir")
    del batch["vi"]
    return images.float() / 255.0, batch


def _to_cpu(x: Any) -> Any:
    if isinstance(x, Tensor):
        return x.cpu()
    if isinstance(x, (list, tuple)):
        return type(x)(_to_cpu(v) for v in x)
    if isinstance(x, dict):
        return {k: _to_cpu(v) for k, v in x.items()}
    return x


def _digest(names: Sequence[str]) -> str:
    return hashlib.sha1("\n".join(names).encode()).hexdigest()[:16]


def fingerprint(task: DownstreamTask, spec: InputSpec, cfg: ProtocolConfig, train_names: Sequence[str]) -> dict:
    """Everything a checkpoint depends on except ``epochs`` (which may grow): task and its scalar options,
    the input, the training settings and the training samples."""
    options = {k: v for k, v in sorted(vars(task).items()) if isinstance(v, (str, int, float, bool, type(None)))}
    keep = ("batch_size", "lr", "weight_decay", "optimizer", "crop", "flip", "seed")
    return {
        "task": task.name,
        "options": options,
        "input": f"{spec.name}={spec.folder.resolve()}" if spec.folder is not None else spec.text,
        **{k: getattr(cfg, k) for k in keep},
        **({"input_norm": cfg.input_norm} if cfg.input_norm != "none" else {}),
        "train": {"count": len(train_names), "digest": _digest(train_names)},
    }


def _check_fingerprint(where: Path, stored: Mapping[str, Any], current: Mapping[str, Any]) -> None:
    changed = sorted(k for k in set(stored) | set(current) if stored.get(k) != current.get(k))
    if changed:
        raise TaskfuseError(
            f"{where} was made with other settings (differing: {', '.join(changed)}); use another --out, or delete "
            f"{where.parent} to start this input again"
        )


def _write_json(path: Path, data: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1) + "\n")


def make_optimizer(model: nn.Module, cfg: ProtocolConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=SGD_MOMENTUM, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def save_checkpoint(folder: Path, model: nn.Module, optimizer: torch.optim.Optimizer, state: dict) -> None:
    """Replace ``folder`` by a complete new checkpoint: written beside it, then swapped in by two renames, so
    a crash leaves the new checkpoint, or the previous one as ``<folder>.old``."""
    stage, old = folder.with_name(folder.name + ".new"), folder.with_name(folder.name + ".old")
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    save_model(model, str(stage / "model.safetensors"))
    torch.save(optimizer.state_dict(), stage / "optimizer.pt")
    (stage / "state.json").write_text(json.dumps(state, indent=1) + "\n")
    if folder.exists():
        shutil.rmtree(old, ignore_errors=True)
        folder.rename(old)
    stage.rename(folder)
    shutil.rmtree(old, ignore_errors=True)


def load_checkpoint(
    folder: Path, model: nn.Module, optimizer: torch.optim.Optimizer, current: Mapping[str, Any]
) -> dict | None:
    """Load the checkpoint in ``folder`` (or the ``.old`` one a crash left) into ``model`` and ``optimizer``
    and return its state; None when there is none. One made with other settings raises."""
    for where in (folder, folder.with_name(folder.name + ".old")):
        if not (where / "state.json").is_file():
            continue
        state = json.loads((where / "state.json").read_text())
        _check_fingerprint(where, state["fingerprint"], current)
        device = next(model.parameters()).device
        load_model(model, where / "model.safetensors", device=str(device))
        optimizer.load_state_dict(torch.load(where / "optimizer.pt", map_location="cpu", weights_only=True))
        return state
    return None


def train_input(
    task: DownstreamTask,
    model: nn.Module,
    items: list[dict[str, Any]],
    mean: Tensor,
    std: Tensor,
    cfg: ProtocolConfig,
    device: torch.device,
    folder: Path,
    current: dict,
    flip_pairs: Sequence[tuple[int, int]] = (),
    progress: bool = True,
) -> dict:
    """Train ``model`` on ``items`` (input image in ``ir``) up to ``cfg.epochs``, resuming from and saving to
    ``folder/checkpoint``; returns the last checkpoint state."""
    per_epoch = len(items) // cfg.batch_size
    if per_epoch == 0:
        raise TaskfuseError(f"the training split has {len(items)} samples, fewer than --batch-size {cfg.batch_size}")
    total = per_epoch * cfg.epochs
    optimizer = make_optimizer(model, cfg)
    checkpoint = folder / "checkpoint"
    state = load_checkpoint(checkpoint, model, optimizer, current) or {
        "epoch": 0,
        "fingerprint": current,
        "losses": [],
        "seconds": 0.0,
    }
    if state["epoch"] > cfg.epochs:
        raise TaskfuseError(
            f"{checkpoint} has trained {state['epoch']} epochs, more than --epochs {cfg.epochs}; pass --epochs "
            f"{state['epoch']} or more, or use another --out"
        )
    steps: list[Any] = [T.HorizontalFlip(0.5, flip_pairs)] if cfg.flip else []
    if cfg.crop is not None:
        steps.append(T.RandomCrop(cfg.crop))
    data = Augmented(items, T.Compose(steps), cfg.seed, cache=False)  # type: ignore[arg-type]
    order = EpochBatches(len(items), cfg.batch_size, cfg.seed)
    norm_mean, norm_std = mean.to(device).view(1, -1, 1, 1), std.to(device).view(1, -1, 1, 1)
    amp = cfg.amp and device.type == "cuda"
    bar = tqdm(
        total=total,
        initial=state["epoch"] * per_epoch,
        desc=f"train {folder.name}",
        unit="step",
        disable=None if progress else True,
        dynamic_ncols=True,
    )
    for epoch in range(state["epoch"], cfg.epochs):
        start = time.perf_counter()
        torch.manual_seed(sample_seed(cfg.seed, epoch, len(items)))
        visit = order.order(epoch)
        batches = [[(i, epoch) for i in visit[b * cfg.batch_size : (b + 1) * cfg.batch_size]] for b in range(per_epoch)]
        loader = DataLoader(
            data,
            batch_sampler=batches,
            num_workers=cfg.workers,
            collate_fn=_collate,
            pin_memory=device.type == "cuda",
        )
        model.train()
        running = 0.0
        for b, (images, batch) in enumerate(loader):
            step = epoch * per_epoch + b
            for group in optimizer.param_groups:
                group["lr"] = cfg.lr * lr_factor(step, total)
            images = (images.to(device, non_blocking=True) - norm_mean) / norm_std
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                loss = task.loss(model, images, to_device(batch, device))
            if not torch.isfinite(loss):
                raise TaskfuseError(
                    f"training on {folder.name}: the loss became {float(loss)} at epoch {epoch + 1}; lower --lr"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            running += float(loss.detach())
            bar.update(1)
            bar.set_postfix(epoch=epoch + 1, loss=f"{float(loss.detach()):.4f}")
        state = {
            **state,
            "epoch": epoch + 1,
            "losses": [*state["losses"], running / per_epoch],
            "seconds": state["seconds"] + time.perf_counter() - start,
        }
        save_checkpoint(checkpoint, model, optimizer, state)
    bar.close()
    return state


def _test_batches(items: list[dict[str, Any]], size: int) -> list[list[int]]:
    """Consecutive indices in batches of up to ``size`` whose images share one size."""
    batches: list[list[int]] = []
    for i, item in enumerate(items):
        if batches and len(batches[-1]) < size and items[batches[-1][0]]["ir"].shape == item["ir"].shape:
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches


@torch.no_grad()
def test_input(
    task: DownstreamTask,
    model: nn.Module,
    items: list[dict[str, Any]],
    mean: Tensor,
    std: Tensor,
    cfg: ProtocolConfig,
    device: torch.device,
    keep: Sequence[int] = (),
    desc: str = "test",
    progress: bool = True,
) -> tuple[dict[str, Any], dict[int, Any]]:
    """Scores of ``model`` on the full-size test ``items`` and the predictions (on the CPU) of ``keep``."""
    model.eval()
    meter = task.new_meter()
    kept: dict[int, Any] = {}
    norm_mean, norm_std = mean.to(device).view(1, -1, 1, 1), std.to(device).view(1, -1, 1, 1)
    amp = cfg.amp and device.type == "cuda"
    batches = _test_batches(items, cfg.batch_size)
    for indices in tqdm(batches, desc=desc, unit="batch", disable=None if progress else True, dynamic_ncols=True):
        images, batch = _collate([items[i] for i in indices])
        images = (images.to(device) - norm_mean) / norm_std
        batch = to_device(batch, device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            preds = task.predict(model, images, batch)
        task.update(meter, preds, batch)
        for i, pred in zip(indices, preds, strict=True):
            if i in keep:
                kept[i] = _to_cpu(pred)
    return task.compute(meter), kept


def write_samples(
    task: DownstreamTask,
    folder: Path,
    images: Mapping[int, Tensor],
    preds: Mapping[int, Any],
    samples: Sequence[dict[str, Any]],
) -> None:
    """``folder/samples/<name>_{input,pred,gt}.png`` of the kept test images, for the grid."""
    for i, pred in preds.items():
        sample = _unpack(samples[i])
        image = images[i].float() / 255.0 if images[i].dtype == torch.uint8 else images[i]
        drawn, truth = task.draw(image, pred, sample)
        for kind, picture in (("input", image), ("pred", drawn), ("gt", truth)):
            write_image(folder / "samples" / f"{sample['name']}_{kind}.png", picture)


def _items(source: InputSource, samples: list[dict[str, Any]], input_norm: str = "none") -> list[dict[str, Any]]:
    """Training/test items: the input image (8-bit) in ``ir``, the annotations and name of the sample; fused
    images stretched first with ``input_norm="minmax"``."""
    keys = ("label", "boxes", "keypoints", "name")
    fused = input_norm == "minmax" and source.spec.kind in ("method", "folder")
    items = []
    for s in samples:
        image = source(_unpack(s))
        items.append({"ir": _quantise(stretch(image) if fused else image), **{k: s[k] for k in keys if k in s}})
    return items


def _run_input(
    task: DownstreamTask,
    spec: InputSpec,
    sources: tuple[InputSource, InputSource],
    train_samples: list[dict[str, Any]],
    test_samples: list[dict[str, Any]],
    flip_pairs: Sequence[tuple[int, int]],
    out: Path,
    cfg: ProtocolConfig,
    device: torch.device,
    progress: bool,
) -> dict[str, Any]:
    folder = out / spec.name
    current = fingerprint(task, spec, cfg, [s["name"] for s in train_samples])
    test_id = {"count": len(test_samples), "digest": _digest([s["name"] for s in test_samples])}
    shown = grid_indices(len(test_samples), cfg.grid)
    needed = [folder / "samples" / f"{test_samples[i]['name']}_{k}.png" for i in shown for k in ("input", "pred")]
    record_path = folder / "result.json"
    if record_path.is_file():
        record = json.loads(record_path.read_text())
        _check_fingerprint(record_path, record["fingerprint"], current)
        if record["epochs"] == cfg.epochs and record["test"] == test_id and all(p.is_file() for p in needed):
            return task.rescore(record["result"])

    train_items = _items(sources[0], train_samples, cfg.input_norm)
    test_items = _items(sources[1], test_samples, cfg.input_norm)
    if cfg.crop is None and len({item["ir"].shape for item in train_items}) > 1:
        raise TaskfuseError("the training images differ in size; pass --crop N to train on N x N crops")
    mean, std = channel_stats([item["ir"] for item in train_items])
    torch.manual_seed(cfg.seed)
    model = task.build(3).to(device)
    state = train_input(task, model, train_items, mean, std, cfg, device, folder, current, flip_pairs, progress)
    result, kept = test_input(
        task, model, test_items, mean, std, cfg, device, shown, desc=f"test {spec.name}", progress=progress
    )
    write_samples(task, folder, {i: test_items[i]["ir"] for i in shown}, kept, test_samples)
    _write_json(
        record_path,
        {
            "input": f"{spec.name}={spec.folder.resolve()}" if spec.folder is not None else spec.text,
            "epochs": cfg.epochs,
            "fingerprint": current,
            "test": test_id,
            "mean": mean.tolist(),
            "std": std.tolist(),
            "losses": state["losses"],
            "train_seconds": state["seconds"],
            "result": result,
        },
    )
    return result


def evaluate(
    task: DownstreamTask,
    train: Dataset,
    test: Dataset,
    inputs: Sequence[InputSpec],
    out: Path,
    cfg: ProtocolConfig,
    progress: bool = True,
) -> dict[str, dict[str, Any]]:
    """Run the protocol (module docstring) for every input; returns the ``task.compute`` results by input
    name, which are also written to ``out/results.json`` with ``out/table.md`` and ``out/grid.png``."""
    out = Path(out)
    names = [spec.name for spec in inputs]
    if not inputs or len(set(names)) != len(names) or set(names) & set(RESERVED):
        raise TaskfuseError(f"inputs {names}: give at least one, each with its own name, none of {RESERVED}")
    device = resolve_device(cfg.device)
    splits = (getattr(train, "split", "train"), getattr(test, "split", "test"))
    train_samples = load_samples(train, f"train ({splits[0]})", cfg.workers, progress)
    test_samples = load_samples(test, f"test ({splits[1]})", cfg.workers, progress)
    sources = {
        spec.name: (
            InputSource(spec, splits[0], out / "inputs", device),
            InputSource(spec, splits[1], out / "inputs", device),
        )
        for spec in inputs
    }
    for train_source, test_source in sources.values():
        train_source.check([s["name"] for s in train_samples])
        test_source.check([s["name"] for s in test_samples])
    flip_pairs = getattr(task, "flip_pairs", getattr(train, "flip_pairs", ()))
    results = {
        spec.name: _run_input(
            task, spec, sources[spec.name], train_samples, test_samples, flip_pairs, out, cfg, device, progress
        )
        for spec in inputs
    }
    shown = grid_indices(len(test_samples), cfg.grid)
    for i in shown:
        sample = _unpack(test_samples[i])
        write_image(out / "samples" / f"{sample['name']}_ir.png", sample["ir"])
        write_image(out / "samples" / f"{sample['name']}_vi.png", sample["vi"])
    rows = {name: out / name for name in names}
    write_outputs(task, results, rows, out, [test_samples[i]["name"] for i in shown], config=asdict(cfg))
    return results

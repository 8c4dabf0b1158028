"""Training configs: YAML files that extend each other, dotted overrides, and validation against a schema.

A config names a ``method`` and holds these sections::

    extends: psfusion            # shipped config name(s) or path(s) relative to this file; merged first
    description: one line shown by ``taskfuse train --list``
    imports: [my_project.methods]  # modules to import first (they register methods of your own)
    method: psfusion             # a registered method (taskfuse.models): network and objective
    model: {...}                 # keyword arguments of taskfuse.models.create(method)
    loss: {...}                  # keyword arguments of the method's loss class
    train: {...}                 # TrainConfig: strategy, optimiser, schedule, length, batch size, crop, ...
                                 #   plus the strategy's own options (rounds, segmenter, phase sections, ...)
    data: {...}                  # DataConfig: datasets, augmentation, loader
    log: {...}                   # LogConfig: logging, validation, checkpoints

The method configs (``configs/<method>.yaml``) carry each paper's recipe; a method x dataset config extends
one and states what differs. ``extends`` merges mappings key by key (later files win; lists and scalars are
replaced; a key set to ``null`` is removed, so its default applies, e.g. to drop an option of the parent's
strategy). ``--set train.lr=1e-4 train.batch_size=8`` then overrides single keys (values parsed as YAML).
Within ``train:``, a strategy's phase sections (``train.fusion``, ``train.segmentation``, ...) start from the
optimiser, batch and crop keys written directly under ``train:``. Every key is checked: the engine's sections
against the dataclasses below and the strategy's options, ``model:`` against the network's constructor,
``loss:`` against the loss class; an unknown key fails naming the closest known one.
"""

from __future__ import annotations

import dataclasses
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from taskfuse.data.io import atomic_path
from taskfuse.version import __version__


@dataclass
class PhaseConfig:
    """How one network is trained in one phase: optimiser, schedule, length, batch size and crop. The keys
    of ``train:`` itself form the main phase and are the defaults of a strategy's phase sections
    (SeAFusion's ``train.fusion`` / ``train.segmentation``, MAFS's stages)."""

    optimizer: Literal["sgd", "adam", "adamw"] = "adam"
    """SGD with momentum, Adam or AdamW."""
    lr: float = 1e-3
    """Initial learning rate (reached after the warm-up)."""
    momentum: float = 0.9
    """SGD momentum."""
    betas: tuple[float, float] = (0.9, 0.999)
    """Adam/AdamW betas."""
    weight_decay: float = 0.0
    """L2 penalty (SGD, Adam) or decoupled decay (AdamW)."""
    lr_schedule: Literal["constant", "poly", "step"] = "poly"
    """``poly``: lr (1 - t/T)^poly_power after the warm-up; ``step``: lr lr_decay^epoch; ``constant``."""
    poly_power: float = 0.9
    """Exponent of the poly schedule."""
    lr_decay: float = 0.75
    """Factor per epoch of the step schedule."""
    warmup_iters: int = 0
    """Warm-up steps, exponential from ``warmup_start_lr`` to ``lr`` (the BiSeNet optimiser of the SeAFusion
    and PSFusion code)."""
    warmup_start_lr: float = 1e-5
    """Learning rate at the first warm-up step."""
    grad_clip: float = 0.0
    """Clip the global gradient norm to this value; 0 = no clipping."""
    epochs: float = 0.0
    """Length in passes over the training set (used when ``iters`` is 0)."""
    iters: int = 0
    """Length in optimisation steps; 0 = from ``epochs``."""
    batch_size: int = 8
    """Images per step on each process."""
    crop: int | tuple[int, int] | Literal["full"] = 256
    """Random crop: a size, [height, width], or ``full`` (whole images, which must then share one size)."""


PHASE_KEYS = frozenset(f.name for f in dataclasses.fields(PhaseConfig))


@dataclass
class TrainConfig(PhaseConfig):
    """The ``train:`` section: the main phase plus run-wide settings. A strategy's options (``rounds``,
    ``segmenter``, phase sections, ...) are written in the same section."""

    strategy: str = ""
    """Training strategy (taskfuse.train.strategies); empty = the method's own."""
    dataset: str = ""
    """Dataset layout of ``data.train`` when that does not name one (synthetic, msrs, mfnet, ...)."""
    amp: bool = True
    """bfloat16 autocast on CUDA; CPU always runs float32."""
    compile: bool = False
    """Wrap the trained networks in ``torch.compile`` (inside DDP's wrapper when there are several processes)."""
    compile_mode: Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"] = "default"
    """``torch.compile`` mode; ``reduce-overhead`` replays CUDA graphs, for networks of many small kernels."""
    compile_loss: bool = False
    """Also ``torch.compile`` the method's objective (default mode): its hundreds of small element-wise and
    filtering operations per step, launched one by one when eager, fused into a few kernels."""
    channels_last: bool = False
    """Networks and image batches in channels_last (NHWC) memory format: no layout transposes around GPU kernels."""
    cudnn_benchmark: bool = False
    """cuDNN times its convolution algorithms for every new input shape and keeps the fastest
    (``torch.backends.cudnn.benchmark``): worth it when the steps' shapes repeat (fixed crops); each new shape
    (validation on whole images of other sizes) pays the timing once."""
    ddp_bucket_mb: float = 25.0
    """DDP's gradient bucket size in MiB (``bucket_cap_mb``); each bucket is all-reduced once complete."""
    ddp_static_graph: bool = False
    """DDP's ``static_graph`` for networks run alike every step: no per-step search for unused parameters."""
    ema: float = 0.0
    """Decay of an exponential moving average of the fusion weights (e.g. 0.999); 0 = off. With EMA on,
    validation and the exported weights use the average."""
    seed: int = 0
    """Seeds initialisation, data order and augmentation."""
    init: str = ""
    """Start the fusion network from these weights (a .safetensors file of the same method and network config,
    or ``builtin`` for the weights shipped with the package) instead of a random initialisation: fine-tuning."""
    device: str = "auto"
    """auto, cpu, cuda or cuda:N (``--device`` overrides; torchrun picks cuda:LOCAL_RANK)."""


@dataclass
class DatasetConfig:
    """One dataset: ``synthetic`` scenes or a layout of ``taskfuse.data.datasets`` at ``root``."""

    name: str = ""
    """``synthetic`` or a dataset layout (msrs, mfnet, fmb, m3fd, pst900, llvip, paired, ...); empty means
    ``train.dataset`` for ``data.train`` and the training set's layout for ``data.val``."""
    root: str = ""
    """Dataset folder (layouts other than synthetic); empty in ``data.val`` means ``data.train.root`` when
    both have one layout (so validation reads another split of the training set's folder)."""
    split: str = ""
    """Split to read; empty = the layout's default. A flat ``paired`` folder (``ROOT/ir`` + ``ROOT/vi``) has the
    splits ``train`` and ``val``, a fixed fifth of the pairs by name hash (``taskfuse.data.datasets.paired``)."""
    length: int = 64
    """Number of synthetic scenes."""
    height: int = 256
    """Synthetic scene height."""
    width: int = 320
    """Synthetic scene width."""
    seed: int = 0
    """Seed of the synthetic scenes (use another one for validation)."""
    limit: int = 0
    """Use only the first N samples; 0 = all."""
    options: dict[str, Any] = field(default_factory=dict)
    """Reader options (ir_range, skip_incomplete, ir_dir/vi_dir of the paired layout, ...) or
    ``taskfuse.data.synthetic.SceneConfig`` fields for synthetic scenes."""
    mix: list[DatasetConfig] = field(default_factory=list)
    """More datasets read with this one, each in its own layout (e.g. RoadScene pairs and MSRS pairs in one
    training set): their samples are concatenated; a key left empty takes this dataset's value."""


@dataclass
class DataConfig:
    """What to train and validate on, and how batches are made."""

    train: DatasetConfig = field(default_factory=DatasetConfig)
    """The training set."""
    val: DatasetConfig | None = None
    """Validation set (full-size images); null = no validation."""
    unlabelled: DatasetConfig | None = None
    """Unlabelled pairs interleaved with ``train`` by the ``mixed`` strategy."""
    scale: tuple[float, float] | None = None
    """Random rescaling range applied before the crop, e.g. [0.5, 2.0]; null = off."""
    flip: bool = True
    """Random horizontal flips."""
    rotate90: bool = False
    """Random rotations by multiples of 90 degrees (MAFS, FGFusion, PSFusion's code)."""
    workers: int | Literal["auto"] = "auto"
    """DataLoader worker processes per training process; ``auto``: the CPUs this process may use, shared among
    the machine's training processes, less one for the training itself, at most 8 (``taskfuse.train.data``)."""
    pin_memory: bool = True
    """Page-locked batches for faster host-to-GPU copies (CUDA only)."""
    cache: bool = False
    """Keep decoded samples in memory (per worker process) instead of decoding them every epoch."""
    val_batch_size: int = 1
    """Validation batch size (images of one size only when above 1)."""


@dataclass
class LogConfig:
    """Progress, metric logs, validation and checkpoints (intervals in steps)."""

    every: int = 20
    """Write losses, learning rates and throughput to metrics.csv every N steps."""
    val_every: int = 0
    """Validate every N steps (and at the end); 0 = only at the end."""
    checkpoint_every: int = 1000
    """Save a resumable checkpoint every N steps (and at the end)."""
    keep: int = 2
    """Resumable checkpoints kept (older ones are deleted)."""
    metrics: list[str] = field(default_factory=lambda: ["EN", "SD", "SF", "SSIM", "Qabf"])
    """Fusion metrics computed at validation (taskfuse.metrics.fusion names)."""
    best: str = ""
    """Score that selects best.safetensors: a fusion metric, ``mIoU``, or empty for none."""
    progress: bool = True
    """Show a progress bar."""
    tensorboard: bool = True
    """Also write TensorBoard events when the tensorboard package is installed."""


@dataclass
class StrategyOptions:
    """Base of a strategy's own options: the keys it reads under ``train:`` besides the engine's (rounds,
    segmenter, phase sections, ...). A strategy without options uses this class as it is."""


@dataclass
class RunConfig:
    """A resolved, validated config. ``strategy`` is the canonical strategy name, ``options`` its options
    (written under ``train:`` in YAML)."""

    method: str
    strategy: str
    options: StrategyOptions
    model: dict[str, Any]
    loss: dict[str, Any]
    data: DataConfig
    train: TrainConfig
    log: LogConfig
    imports: list[str] = field(default_factory=list)
    description: str = ""
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain data for YAML: every default filled in, so the file alone reproduces the run."""
        return {
            "description": self.description,
            "imports": list(self.imports),
            "method": self.method,
            "model": plain(self.model),
            "loss": plain(self.loss),
            "train": plain(
                {
                    **dataclasses.asdict(self.train),
                    "strategy": self.strategy,
                    **dataclasses.asdict(self.options),
                }
            ),
            "data": plain(dataclasses.asdict(self.data)),
            "log": plain(dataclasses.asdict(self.log)),
        }


def plain(x: Any) -> Any:
    """Tuples to lists, recursively, so ``yaml.safe_dump`` writes plain sequences."""
    if isinstance(x, Mapping):
        return {k: plain(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [plain(v) for v in x]
    return x


def git_commit() -> str:
    """The commit of taskfuse's checkout (``-dirty`` with local changes); "unknown" outside git."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit}-dirty" if dirty else commit or "unknown"


def save_config(cfg: RunConfig, path: Path) -> Path:
    """Write the resolved config with the package version and git commit (atomically)."""
    data = cfg.to_dict()
    data["provenance"] = {
        "taskfuse_version": __version__,
        "git_commit": git_commit(),
        "source": cfg.source,
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    with atomic_path(path) as tmp:
        tmp.write_text(yaml.safe_dump(data, sort_keys=False))
    return path

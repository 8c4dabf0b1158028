"""Training configs: YAML files that extend each other, dotted overrides, and validation against a schema.

A config names a ``method`` and holds these sections::

    extends: psfusion            # shipped config name(s) or path(s) relative to this file; merged first
    description: one line shown by ``taskfuse train --list``
    imports: [my_project.methods]  # modules to import first (they register methods of your own)
    method: psfusion             # the network (taskfuse.models) and its objective (taskfuse.train.methods)
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
import importlib
import inspect
import subprocess
import time
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from taskfuse import __version__
from taskfuse.data.io import atomic_path
from taskfuse.errors import TaskfuseError
from taskfuse.train.schema import build, closest, coerce, unknown_key

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
TOP_KEYS = (
    "extends",
    "description",
    "imports",
    "method",
    "model",
    "loss",
    "data",
    "train",
    "log",
    "provenance",
)


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
    """Wrap the trained networks in ``torch.compile``."""
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
    """Split to read; empty = the layout's default."""
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
    workers: int = 2
    """DataLoader worker processes per training process."""
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
class RunConfig:
    """A resolved, validated config. ``strategy`` is the canonical strategy name, ``options`` its options
    (written under ``train:`` in YAML)."""

    method: str
    strategy: str
    options: Any
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
            "model": _plain(self.model),
            "loss": _plain(self.loss),
            "train": _plain(
                {
                    **dataclasses.asdict(self.train),
                    "strategy": self.strategy,
                    **dataclasses.asdict(self.options),
                }
            ),
            "data": _plain(dataclasses.asdict(self.data)),
            "log": _plain(dataclasses.asdict(self.log)),
        }


def _plain(x: Any) -> Any:
    """Tuples to lists, recursively, so ``yaml.safe_dump`` writes plain sequences."""
    if isinstance(x, Mapping):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_plain(v) for v in x]
    return x


def shipped_configs() -> dict[str, tuple[Path, str]]:
    """Shipped configs by name with their one-line description."""
    return {path.stem: (path, describe(path)) for path in sorted(CONFIG_DIR.glob("*.yaml"))}


def describe(path: Path, width: int = 100) -> str:
    """The file's own ``description:``, else its opening comment shortened to ``width`` characters."""
    text = path.read_text()
    data = yaml.safe_load(text) or {}
    if isinstance(data, Mapping) and data.get("description"):
        return str(data["description"])
    words = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        words += line.lstrip("#").split()
    summary = " ".join(words)
    return summary if len(summary) <= width else summary[: summary.rfind(" ", 0, width)] + " …"


def resolve_source(source: str | Path, base: Path | None = None) -> Path:
    """A config path from a file path (relative to ``base`` when given) or a shipped config name."""
    text = str(source)
    candidates = [Path(text)] if base is None else [base / text]
    if not text.endswith((".yaml", ".yml")):
        candidates.append(CONFIG_DIR / f"{text}.yaml")
    for path in candidates:
        if path.is_file():
            return path
    names = list(shipped_configs())
    raise TaskfuseError(
        f"config {text!r}: no such file and no shipped config of that name{closest(text, names)} "
        "(see taskfuse train --list)"
    )


def read_tree(path: Path, chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The mapping in ``path`` merged over the configs it ``extends`` (recursively). A file named after a
    fusion method (``psfusion.yaml``) configures that method unless it says ``method:``."""
    path = path.resolve()
    if path in chain:
        cycle = " -> ".join(p.name for p in (*chain, path))
        raise TaskfuseError(f"{path}: configs extend each other in a cycle ({cycle}); remove one extends")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise TaskfuseError(f"{path}: not valid YAML ({e})") from e
    if not isinstance(data, dict):
        raise TaskfuseError(f"{path}: a config must be a mapping of sections, got {type(data).__name__}")
    from taskfuse import models

    if "method" not in data and path.stem in models.MODELS:
        data["method"] = path.stem
    parents = data.pop("extends", None) or []
    merged: dict[str, Any] = {}
    for parent in [parents] if isinstance(parents, str) else parents:
        merged = merge(merged, read_tree(resolve_source(parent, path.parent), (*chain, path)))
    return merge(merged, data)


def merge(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """``top`` over ``base``: mappings merge key by key, a null removes the key, anything else replaces it."""
    out = dict(base)
    for key, value in top.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def apply_override(raw: dict[str, Any], text: str) -> None:
    """Set one ``dotted.key=value`` in ``raw``; the value is parsed as YAML (``8``, ``1e-4``, ``[256, 256]``),
    and ``null`` removes the key (its default applies)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise TaskfuseError(f"--set {text!r}: write KEY=VALUE with a dotted key, e.g. train.lr=1e-4")
    parts = key.strip().split(".")
    node = raw
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif not isinstance(child, dict):
            raise TaskfuseError(f"--set {text!r}: {'.'.join(parts[: i + 1])} is a value, not a section")
        node = child
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError as e:
        raise TaskfuseError(f"--set {text!r}: the value is not valid YAML ({e})") from e
    if parsed is None:
        node.pop(parts[-1], None)
    else:
        node[parts[-1]] = parsed


def load_config(source: str | Path, overrides: Sequence[str] = ()) -> RunConfig:
    """Read, merge, override and validate a config (a path or a shipped name)."""
    path = resolve_source(source)
    raw = read_tree(path)
    for text in overrides:
        apply_override(raw, text)
    return validate(raw, str(path))


def validate(raw: Mapping[str, Any], source: str = "") -> RunConfig:
    """Check every section of a merged config and fill the defaults."""
    from taskfuse import models
    from taskfuse.data.datasets import DATASETS
    from taskfuse.train.methods import method_spec
    from taskfuse.train.strategies import STRATEGIES

    for key in raw:
        if key not in TOP_KEYS:
            raise unknown_key(f"{source or 'config'}", str(key), TOP_KEYS)
    imports = coerce(raw.get("imports") or [], list[str], "imports")
    for module in imports:
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise TaskfuseError(f"imports: cannot import {module!r} ({e}); check the name and PYTHONPATH") from e
    method = raw.get("method")
    if not isinstance(method, str):
        raise TaskfuseError(f"{source or 'config'}: give the fusion method as `method: NAME` (e.g. psfusion)")
    network = models.MODELS.get(method)
    spec = method_spec(method)

    train_raw = raw.get("train") or {}
    if not isinstance(train_raw, Mapping):
        raise TaskfuseError(f"train: expected a mapping of keys to values, got {train_raw!r}")
    strategy = coerce(train_raw.get("strategy") or spec.strategy, str, "train.strategy")
    strategy_cls = STRATEGIES.get(strategy)
    train, options = split_train(train_raw, strategy_cls.Options)
    model = check_kwargs(network, raw.get("model"), "model")
    loss = check_kwargs(spec.loss_class(), raw.get("loss"), "loss")
    data = build(DataConfig, raw.get("data"), "data")
    if train.dataset and data.train.name and train.dataset != data.train.name:
        raise TaskfuseError(
            f"train.dataset is {train.dataset!r} but data.train.name is {data.train.name!r}; set one of them"
        )
    data.train.name = data.train.name or train.dataset or "synthetic"
    if data.val is not None:
        data.val.name = data.val.name or data.train.name
        if not data.val.root and data.val.name == data.train.name:
            data.val.root = data.train.root
    for key, ds in (("train", data.train), ("val", data.val), ("unlabelled", data.unlabelled)):
        if ds is not None and ds.name != "synthetic" and ds.name not in DATASETS:
            raise TaskfuseError(
                f"data.{key}.name: unknown dataset {ds.name!r}{closest(ds.name, ['synthetic', *DATASETS])} "
                f"Known: synthetic, {', '.join(DATASETS)}"
            )
    cfg = RunConfig(
        method=method.lower(),
        strategy=strategy_cls.name,
        options=options,
        model=model,
        loss=loss,
        data=data,
        train=train,
        log=build(LogConfig, raw.get("log"), "log"),
        imports=imports,
        description=str(raw.get("description") or ""),
        source=source,
    )
    check_log(cfg)
    strategy_cls.check(cfg)
    return cfg


def check_log(cfg: RunConfig) -> None:
    """Validation metrics must exist, and ``log.best`` must be one of them (or mIoU) with a validation set."""
    from taskfuse.metrics.fusion import FusionMetrics

    if cfg.log.metrics:
        FusionMetrics(cfg.log.metrics)
    best = cfg.log.best
    if best and best != "mIoU" and best not in cfg.log.metrics:
        raise TaskfuseError(f"log.best {best!r} is neither mIoU nor one of log.metrics ({', '.join(cfg.log.metrics)})")
    if best and cfg.data.val is None:
        raise TaskfuseError("log.best needs a validation set: set data.val, or clear log.best")


def split_train(raw: Mapping[str, Any], options_cls: type) -> tuple[TrainConfig, Any]:
    """Split ``train:`` into the engine's keys and the strategy's options. A phase section of the options
    starts from its own defaults, then takes the phase keys written directly under ``train:`` except the
    length (``epochs``, ``iters``), then its own keys."""
    engine = {f.name for f in dataclasses.fields(TrainConfig)}
    own = {f.name: f for f in dataclasses.fields(options_cls)}
    for key in raw:
        if key not in engine and key not in own:
            raise unknown_key("train", str(key), engine | set(own))
    general = {k: v for k, v in raw.items() if k in engine}
    shared = {k: v for k, v in general.items() if k in PHASE_KEYS and k not in ("epochs", "iters")}
    hints = typing.get_type_hints(options_cls)
    options_raw = {}
    for key, f in own.items():
        tp = hints[key]
        if isinstance(tp, type) and issubclass(tp, PhaseConfig):
            section = raw.get(key) or {}
            if not isinstance(section, Mapping):
                raise TaskfuseError(f"train.{key}: expected a mapping of keys to values, got {section!r}")
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else tp()
            options_raw[key] = merge(merge(_plain(dataclasses.asdict(default)), shared), section)
        elif key in raw:
            options_raw[key] = raw[key]
    return build(TrainConfig, general, "train"), build(options_cls, options_raw, "train")


def check_kwargs(fn: Callable[..., Any], raw: Mapping[str, Any] | None, where: str) -> dict[str, Any]:
    """Keyword arguments checked against ``fn``'s signature (names, and simple types where annotated)."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise TaskfuseError(f"{where}: expected a mapping of keyword arguments, got {raw!r}")
    params = {
        n: p
        for n, p in inspect.signature(fn).parameters.items()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and n != "self"
    }
    open_ended = any(p.kind is p.VAR_KEYWORD for p in inspect.signature(fn).parameters.values())
    try:
        hints = typing.get_type_hints(fn.__init__ if inspect.isclass(fn) else fn)
    except (NameError, TypeError):
        hints = {}
    out = {}
    for key, value in raw.items():
        if key not in params and not open_ended:
            raise unknown_key(where, str(key), params)
        tp = hints.get(key)
        simple = tp in (int, float, bool, str) or (
            typing.get_origin(tp) in (typing.Union, types.UnionType)
            and all(a in (int, float, bool, str, type(None)) for a in typing.get_args(tp))
        )
        out[key] = coerce(value, tp, f"{where}.{key}") if simple else value
    return out


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

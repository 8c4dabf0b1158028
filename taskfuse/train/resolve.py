"""Reading a training config: shipped names and paths, ``extends``, ``--set`` overrides, and validation.

The format is described in ``taskfuse.train.config``, which holds the sections' dataclasses; this module sits
above the strategies and the method registry because validating a config asks them which keys exist.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from taskfuse import models
from taskfuse.data.datasets import DATASETS
from taskfuse.errors import TaskfuseError
from taskfuse.metrics.fusion import FusionMetrics
from taskfuse.train.config import PHASE_KEYS, DataConfig, LogConfig, PhaseConfig, RunConfig, TrainConfig, plain
from taskfuse.train.schema import build, closest, coerce, unknown_key
from taskfuse.train.strategies import STRATEGIES
from taskfuse.train.strategies.base import Budget

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
    if "method" not in data and path.stem in models.METHODS:
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


QUICK = Budget(fusion_steps=6, batch_size=2, crop=64, rounds=2, task_steps=2, pretext_steps=2, teacher_steps=2)
"""The budget of ``--quick``: every network of the strategy takes a few steps of two 64 x 64 crops."""


def quick_overrides(raw: Mapping[str, Any]) -> list[str]:
    """``--set`` overrides that turn the config ``raw`` into a check that it trains, before a long run: the
    strategy's networks take the steps of ``QUICK``, datasets are cut to 8 training and 2 validation samples
    (synthetic scenes to 96 x 128), data load in the main process, and the run validates and checkpoints once."""
    method = raw.get("method")
    if not isinstance(method, str):
        return []
    spec = models.get(method)
    train = raw.get("train") or {}
    strategy = STRATEGIES.get(str(train.get("strategy") or spec.strategy))
    task = train.get("task")
    out = [
        *strategy.budget(replace(QUICK, task=task) if isinstance(task, str) and task else QUICK, spec),
        f"train.batch_size={QUICK.batch_size}",
        f"train.crop={QUICK.crop}",
        "train.warmup_iters=0",
        "data.workers=0",
        "log.every=1",
        "log.val_every=0",
        f"log.checkpoint_every={QUICK.fusion_steps}",
    ]
    data = raw.get("data") or {}
    for key, limit in (("train", 8), ("val", 2), ("unlabelled", 8)):
        if key == "train" or data.get(key) is not None:
            out += [f"data.{key}.limit={limit}", f"data.{key}.height=96", f"data.{key}.width=128"]
    return out


def load_config(source: str | Path, overrides: Sequence[str] = (), quick: bool = False) -> RunConfig:
    """Read, merge, override and validate a config (a path or a shipped name). ``quick`` makes it a run of a few
    small steps (``quick_overrides``); ``overrides`` still have the last word."""
    path = resolve_source(source)
    raw = read_tree(path)
    for text in overrides:
        apply_override(raw, text)
    if quick:
        for text in (*quick_overrides(raw), *overrides):
            apply_override(raw, text)
    return validate(raw, str(path))


def validate(raw: Mapping[str, Any], source: str = "") -> RunConfig:
    """Check every section of a merged config and fill the defaults."""
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
    spec = models.get(method)
    if not spec.learned:
        raise TaskfuseError(f"{source or 'config'}: {method!r} is a classical rule without weights; nothing to train")

    train_raw = raw.get("train") or {}
    if not isinstance(train_raw, Mapping):
        raise TaskfuseError(f"train: expected a mapping of keys to values, got {train_raw!r}")
    strategy = coerce(train_raw.get("strategy") or spec.strategy, str, "train.strategy")
    strategy_cls = STRATEGIES.get(strategy)
    train, options = split_train(train_raw, strategy_cls.Options)
    model = check_kwargs(spec.network, raw.get("model"), "model")
    loss = check_kwargs(spec.loss, raw.get("loss"), "loss")
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
            data.val.options = data.val.options or dict(data.train.options)
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
            options_raw[key] = merge(merge(plain(dataclasses.asdict(default)), shared), section)
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

"""Typed config sections as dataclasses: built from a YAML mapping, unknown keys rejected with a suggestion.

A section's fields are its schema: the field type says what a value may be (``int``, ``float``, ``bool``,
``str``, ``Literal[...]``, ``list[...]``, ``tuple[...]``, ``dict``, a nested section, or ``X | None``) and the
default is used when the key is absent. Numbers written as strings (``1e-4``, which YAML 1.1 reads as text)
are accepted where a number is expected.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar, Union

from taskfuse.errors import TaskfuseError

S = TypeVar("S")


def closest(key: str, known: typing.Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the known name closest to ``key``, or ``""``."""
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else ""


def unknown_key(where: str, key: str, known: typing.Iterable[str]) -> TaskfuseError:
    known = sorted(known)
    return TaskfuseError(f"{where}: unknown key {key!r}{closest(key, known)} Known keys: {', '.join(known)}")


def build(cls: type[S], raw: Mapping[str, Any] | None, where: str) -> S:
    """An instance of the dataclass ``cls`` from ``raw``; ``where`` (a dotted key path) prefixes errors."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise TaskfuseError(f"{where}: expected a mapping of keys to values, got {raw!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    values = {}
    for key, value in raw.items():
        if key not in names:
            raise unknown_key(where, str(key), names)
        values[key] = coerce(value, hints[key], f"{where}.{key}")
    return cls(**values)


def coerce(value: Any, tp: Any, where: str) -> Any:
    """``value`` checked against (and where harmless converted to) the type ``tp``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return coerce(value, option, where)
            except TaskfuseError as e:
                errors.append(str(e))
        raise TaskfuseError(errors[0] if len(errors) == 1 else f"{where}: {value!r} fits none of {_name(tp)}")
    if origin is typing.Literal:
        if value not in args:
            raise TaskfuseError(
                f"{where}: {value!r} is not one of {', '.join(map(repr, args))}{closest(str(value), map(str, args))}"
            )
        return value
    if dataclasses.is_dataclass(tp):
        return build(tp, value, where)
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise TaskfuseError(f"{where}: expected a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise TaskfuseError(f"{where}: expected {len(args)} values, got {list(value)}")
            return tuple(coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True)))
        item = args[0] if args else Any
        out = [coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise TaskfuseError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise TaskfuseError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp in (int, float):
        return _number(value, tp, where)
    if tp is str:
        if not isinstance(value, str):
            raise TaskfuseError(f"{where}: expected text, got {value!r}")
        return value
    raise TypeError(f"{where}: unsupported schema type {tp!r}")


def _number(value: Any, tp: type, where: str) -> int | float:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise TaskfuseError(f"{where}: expected a number, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TaskfuseError(f"{where}: expected a number, got {value!r}")
    if tp is int:
        if float(value) != int(value):
            raise TaskfuseError(f"{where}: expected a whole number, got {value!r}")
        return int(value)
    return float(value)


def _name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")

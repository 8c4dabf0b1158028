"""Name -> factory registries (models, segmenters, datasets, metrics, strategies) with "did you mean" on typos."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from taskfuse.errors import TaskfuseError

T = TypeVar("T")


class Registry(Generic[T]):
    """A mapping from a lower-case name to a factory, filled by the ``register`` decorator at import time."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: ``@REG.register("psfusion")`` above a class or function."""
        key = name.lower()

        def wrap(obj: T) -> T:
            if key in self._items and self._items[key] is not obj:
                raise TaskfuseError(f"{self.kind} {name!r} is registered twice; rename one of them")
            self._items[key] = obj
            return obj

        return wrap

    def get(self, name: str) -> T:
        """The factory registered as ``name``; an unknown name raises with the closest known names."""
        key = name.lower()
        if key not in self._items:
            close = difflib.get_close_matches(key, self._items, n=3, cutoff=0.5)
            hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            raise TaskfuseError(f"unknown {self.kind} {name!r}{hint} Known: {', '.join(sorted(self._items))}")
        return self._items[key]

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def create(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Call the factory registered as ``name``."""
        return self.get(name)(*args, **kwargs)  # type: ignore[operator]

"""Registries of swappable parts (samplers, objective terms, α schedules, datasets):
one decorator to register, one lookup that fails with the list of what is registered. A
registry given a `package` imports that package's every module before its first lookup, so a
part written in a new file there registers itself with no other file touched."""
from __future__ import annotations

import importlib
import pkgutil
from typing import Callable, Generic, Iterator, TypeVar

from .errors import RegistryError

T = TypeVar("T")


class Registry(Generic[T]):
    """Name → object. `kind` appears in the error message ("No sampler 'x' registered")."""

    def __init__(self, kind: str, package: str | None = None) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._package = package  # imported (all its modules) at the first lookup, not at import time

    def _discover(self) -> None:
        if self._package is None:
            return
        package, self._package = importlib.import_module(self._package), None
        for module in pkgutil.iter_modules(package.__path__):
            importlib.import_module(f"{package.__name__}.{module.name}")

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            self.add(name, obj)
            return obj

        return decorator

    def add(self, name: str, obj: T) -> None:
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._items[name] = obj

    def get(self, name: str) -> T:
        self._discover()
        try:
            return self._items[name]
        except KeyError:
            have = ", ".join(self._items) or "none"
            raise RegistryError(f"No {self.kind} {name!r} registered (have: {have})") from None

    def names(self) -> list[str]:
        self._discover()
        return list(self._items)

    def __contains__(self, name: object) -> bool:
        self._discover()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        self._discover()
        return iter(self._items)

    def items(self):
        self._discover()
        return self._items.items()

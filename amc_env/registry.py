"""Name -> factory registries (timm ``_registry.py`` style), so tests can loop over every entry."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from amc_agent.env.errors import UserError

F = TypeVar("F", bound=Callable)


class Registry(Generic[F]):
    """A named table of factories.

    ``kind`` is the noun used in error messages ("model", "dataset", ...). Lookup of an unknown
    name raises :class:`UserError` listing every valid name.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, F] = {}

    def register(self, name: str) -> Callable[[F], F]:
        """Decorator registering ``fn`` under ``name``; a duplicate name is a programming error."""

        def deco(fn: F) -> F:
            if name in self._entries:
                raise KeyError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = fn
            return fn

        return deco

    def get(self, name: str) -> F:
        """The factory for ``name``, or a :class:`UserError` naming the valid choices."""
        try:
            return self._entries[name]
        except KeyError:
            raise UserError(
                f"unknown {self.kind} {name!r}; valid names: {', '.join(self.names())}"
            ) from None

    def names(self) -> list[str]:
        """Registered names in registration order."""
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

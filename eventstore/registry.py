"""A registry of named things (projections, TODO lists): explicit registration, clear lookups."""

from __future__ import annotations

from typing import Generic, Protocol, TypeVar


class Named(Protocol):
    @property
    def name(self) -> str: ...


T = TypeVar("T", bound=Named)


class NotRegistered(LookupError):
    pass


class Registry(Generic[T]):
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, item: T) -> T:
        existing = self._items.get(item.name)
        if existing is not None and existing is not item:
            raise ValueError(f"{self.kind.capitalize()} {item.name!r} is already registered")
        self._items[item.name] = item
        return item

    def unregister(self, name: str) -> T | None:
        return self._items.pop(name, None)

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(self.names()) or "none"
            raise NotRegistered(f"Unknown {self.kind} {name!r} (known: {known})") from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def all(self) -> list[T]:
        return [self._items[n] for n in self.names()]

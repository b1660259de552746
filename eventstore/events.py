"""Event types: frozen dataclasses registered by their type name.

The type name and the payload fields are the published language between apps: orders and payments
never import each other, they only agree on names such as "PaymentIssued" and its fields.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import functools
import typing
import uuid
from collections.abc import Callable
from typing import Any, ClassVar, Protocol, TypeVar


class DomainEvent(Protocol):
    event_type: ClassVar[str]
    schema_version: ClassVar[int]


class UnknownEventType(LookupError):
    def __init__(self, type_name: str, position: int | None = None) -> None:
        where = f" at position {position}" if position is not None else ""
        super().__init__(f"Event type {type_name!r}{where} is not registered; is its app installed?")
        self.type_name = type_name
        self.position = position


_REGISTRY: dict[str, type] = {}
_UPCASTERS: dict[str, dict[int, Callable[[dict], dict]]] = {}

E = TypeVar("E")


def event_type(
    name: str, *, version: int = 1, upcasters: dict[int, Callable[[dict], dict]] | None = None
) -> Callable[[type[E]], type[E]]:
    """Register a dataclass as the event type `name`.

    `upcasters` maps an older schema version to a function that turns its data into the next
    version's, so old events in the log stay readable after a payload change.
    """

    def register(cls: type[E]) -> type[E]:
        if not dataclasses.is_dataclass(cls):
            raise TypeError(f"{cls.__name__} must be a dataclass to be an event type")
        existing = _REGISTRY.get(name)
        if existing is not None and existing.__qualname__ != cls.__qualname__:
            raise ValueError(f"Event type {name!r} is already registered by {existing.__qualname__}")
        cls.event_type = name  # type: ignore[attr-defined]
        cls.schema_version = version  # type: ignore[attr-defined]
        _REGISTRY[name] = cls
        _UPCASTERS[name] = dict(upcasters or {})
        return cls

    return register


def registered_types() -> dict[str, type]:
    return dict(_REGISTRY)


def event_class(type_name: str, *, position: int | None = None) -> type:
    try:
        return _REGISTRY[type_name]
    except KeyError:
        raise UnknownEventType(type_name, position) from None


def _to_json(value: Any) -> Any:
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    return value


def event_to_data(event: DomainEvent) -> dict[str, Any]:
    return {f.name: _to_json(getattr(event, f.name)) for f in dataclasses.fields(event)}  # type: ignore[arg-type]


_PARSERS: dict[Any, Callable[[Any], Any]] = {
    decimal.Decimal: lambda v: decimal.Decimal(str(v)),
    datetime.datetime: datetime.datetime.fromisoformat,
    datetime.date: datetime.date.fromisoformat,
    uuid.UUID: uuid.UUID,
}


def _parser(hint: Any) -> Callable[[Any], Any] | None:
    if hint in _PARSERS:
        return _PARSERS[hint]
    # `X | None`: parse the value when there is one.
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if len(args) == 1 and args[0] in _PARSERS:
        inner = _PARSERS[args[0]]
        return lambda v: None if v is None else inner(v)
    return None


def event_from_data(
    type_name: str, data: dict[str, Any], *, schema_version: int = 1, position: int | None = None
) -> Any:
    cls = event_class(type_name, position=position)
    upcasters = _UPCASTERS[type_name]
    while schema_version < cls.schema_version:
        data = upcasters[schema_version](data)
        schema_version += 1
    parsers = _field_parsers(cls)
    return cls(
        **{name: (parse(data[name]) if parse else data[name]) for name, parse in parsers if name in data}
    )


@functools.cache
def _field_parsers(cls: type) -> tuple[tuple[str, Callable[[Any], Any] | None], ...]:
    hints = typing.get_type_hints(cls)
    return tuple((f.name, _parser(hints[f.name])) for f in dataclasses.fields(cls))

"""Event types: typed, validated messages registered by their type name.

An event type is a `DomainEvent` subclass (a frozen msgspec Struct) decorated with `@event_type`. The
type name and the payload fields are the published language between apps: orders and payments
never import each other, they only agree on names such as "PaymentIssued" and its fields.

Everything that enters the log goes through `event_encode`, which checks the event against its
declared type (field types, required fields, no unknown fields) and the rules other apps attach to
it; everything that leaves it goes through `event_decode`, which upcasts old schema versions and
checks the data the same way. msgspec does the checking: it validates a payload in a few
microseconds, so every append and every read can afford it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeVar, dataclass_transform

import msgspec


# Every subclass is frozen and keyword-only too (msgspec inherits the options; this tells type checkers).
@dataclass_transform(field_specifiers=(msgspec.field,), frozen_default=True, kw_only_default=True)
class DomainEvent(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of every event type: keyword-only, immutable, and strict about its fields."""

    event_type: ClassVar[str]
    schema_version: ClassVar[int]


class InvalidEvent(ValueError):
    """An event does not match its declared type, or a rule refused it; nothing was written."""

    def __init__(self, type_name: str, reason: str, *, position: int | None = None) -> None:
        where = f" at position {position}" if position is not None else ""
        super().__init__(f"{type_name}{where} is invalid: {reason}")
        self.type_name = type_name
        self.reason = reason
        self.position = position


class UnknownEventType(LookupError):
    def __init__(self, type_name: str, position: int | None = None) -> None:
        where = f" at position {position}" if position is not None else ""
        super().__init__(f"Event type {type_name!r}{where} is not registered; is its app installed?")
        self.type_name = type_name
        self.position = position


_REGISTRY: dict[str, type[DomainEvent]] = {}
Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
_UPCASTERS: dict[str, dict[int, Upcaster]] = {}
_RULES: dict[str, list[Callable[[Any], None]]] = {}

E = TypeVar("E", bound=type[DomainEvent])


def event_type(
    name: str, *, version: int = 1, upcasters: Mapping[int, Upcaster] | None = None
) -> Callable[[E], E]:
    """Register a DomainEvent subclass as the event type `name`.

    `upcasters` maps an older schema version to a function that turns its data into the next
    version's, so old events in the log stay readable after a payload change.
    """

    def register(cls: E) -> E:
        if not (isinstance(cls, type) and issubclass(cls, DomainEvent)):
            raise TypeError(f"{cls!r} must subclass eventstore.events.DomainEvent to be an event type")
        existing = _REGISTRY.get(name)
        if existing is not None and existing.__qualname__ != cls.__qualname__:
            raise ValueError(f"Event type {name!r} is already registered by {existing.__qualname__}")
        missing = [v for v in range(1, version) if v not in (upcasters or {})]
        if missing:
            raise ValueError(f"Event type {name!r} v{version} needs upcasters from versions {missing}")
        cls.event_type = name
        cls.schema_version = version
        _REGISTRY[name] = cls
        _UPCASTERS[name] = dict(upcasters or {})
        return cls

    return register


class _Published(type):
    # isinstance(event, ref) holds for an event of the named type, whichever app's class it is.
    event_type: str

    def __instancecheck__(cls, instance: object) -> bool:
        return getattr(type(instance), "event_type", None) == cls.event_type

    def __repr__(cls) -> str:
        return f"published({cls.event_type!r})"


_PUBLISHED: list[_Published] = []


def published(name: str) -> Any:
    """Another app's event type, declared where it is read: `OrderPlaced = published("OrderPlaced")`
    in payments/events.py. The consumer names the producer's published type instead of importing
    it (orders and payments never import each other); `ref.event_type` is the name, and
    `isinstance(event, ref)` matches its events. The system checks refuse a name no app registers.
    """
    ref = _Published(name, (), {"event_type": name})
    _PUBLISHED.append(ref)
    return ref


def published_names() -> list[str]:
    """The type names every `published()` reference names."""
    return sorted({ref.event_type for ref in _PUBLISHED})


def event_rule(type_name: str) -> Callable[[Callable[[Any], None]], Callable[[Any], None]]:
    """Attach a rule to an event type, checked on every append: it raises InvalidEvent to refuse.

    This is how one app states a constraint on another's events without importing it (payments
    refuses an OrderPlaced below the gateway's smallest charge).
    """

    def register(rule: Callable[[Any], None]) -> Callable[[Any], None]:
        rules = _RULES.setdefault(type_name, [])
        if rule not in rules:
            rules.append(rule)
        return rule

    return register


def registered_types() -> dict[str, type[DomainEvent]]:
    return dict(_REGISTRY)


def event_class(type_name: str, *, position: int | None = None) -> type[DomainEvent]:
    try:
        return _REGISTRY[type_name]
    except KeyError:
        raise UnknownEventType(type_name, position) from None


def event_encode(event: DomainEvent) -> dict[str, Any]:
    """The event as JSON-ready data, after checking it against its type and its rules."""
    cls = type(event)
    name = getattr(cls, "event_type", cls.__name__)
    if _REGISTRY.get(name) is not cls:
        raise UnknownEventType(name)
    try:
        data: dict[str, Any] = msgspec.to_builtins(event)
        # Construction does not check field types; a round trip through the declared type does.
        msgspec.convert(data, cls, strict=True)
    except (msgspec.ValidationError, TypeError) as exc:
        raise InvalidEvent(name, str(exc)) from None
    for rule in _RULES.get(name, ()):
        rule(event)
    return data


def event_decode(
    type_name: str, data: Any, *, schema_version: int = 1, position: int | None = None
) -> DomainEvent:
    """The typed event for stored data: upcast to the current schema version, then checked."""
    cls = event_class(type_name, position=position)
    try:
        while schema_version < cls.schema_version:
            data = _UPCASTERS[type_name][schema_version](data)
            schema_version += 1
        return msgspec.convert(data, cls, strict=True)
    except Exception as exc:  # an upcaster's bug too: the event cannot be read, so halt there
        raise InvalidEvent(type_name, f"{type(exc).__name__}: {exc}", position=position) from None


# --- the event store's own events ---------------------------------------------------------------


@event_type("ProjectionEventSkipped")
class ProjectionEventSkipped(DomainEvent):
    """An operator let a projection pass one event it cannot apply. Replays skip it the same way."""

    projection: str
    position: int
    reason: str


@event_type("ParkedEventSkipped")
class ParkedEventSkipped(DomainEvent):
    """An operator let the projections named pass the parked event at `position`, the first of its
    business case (the event's correlation id); the events queued behind it were applied next.
    Replays of those projections pass it the same way."""

    position: int
    projections: list[str]
    reason: str


@event_type("ProjectionRebuilt")
class ProjectionRebuilt(DomainEvent):
    """A replay swapped in a rebuild whose rows differ from the live ones: how many, a sample of
    their keys, and whether an operator accepted more than the threshold (`--accept-differences`)."""

    projection: str
    added: int
    removed: int
    changed: int
    sample: list[str]
    accepted: bool


@event_type("EventTypeAcknowledged")
class EventTypeAcknowledged(DomainEvent):
    """An operator saw the events of a type no installed app registers and accepted that no
    projection reads them (a retired type, another system's): they no longer count against health."""

    type_name: str
    reason: str

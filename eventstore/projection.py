"""Declaring a projection: plain functions that apply batches of typed events, registered
explicitly, no Django signals.

A projection is a name, the event types it handles, and one `apply(batch)` function that writes a
whole batch of events in a constant number of statements (`row_projection` builds one for the
common "one row per key" read model: one SELECT of the batch's rows, a fold in memory, one upsert).
Handlers only ever see typed, upcast events (`Envelope.event`), decoded by the engine
(eventstore/catchup.py).
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable, Collection, Hashable, Iterator, Mapping, Sequence
from typing import Any, Generic, TypeVar

from django.db.models import Model

from eventstore.backends import backend
from eventstore.backends.base import column, model_field
from eventstore.events import DomainEvent, registered_types
from eventstore.record import RecordedEvent
from eventstore.registry import Registry

E = TypeVar("E", bound=DomainEvent)


@dataclasses.dataclass(frozen=True, slots=True)
class Envelope(Generic[E]):
    """A typed event with its place in the log: what every handler receives."""

    event: E
    recorded: RecordedEvent

    @property
    def type(self) -> str:
        return self.recorded.type

    @property
    def position(self) -> int:
        return self.recorded.position

    @property
    def stream_id(self) -> str:
        return self.recorded.stream_id

    @property
    def correlation_id(self) -> str:
        return self.recorded.correlation_id

    @property
    def causation_id(self) -> str:
        return self.recorded.causation_id

    @property
    def actor(self) -> str:
        return self.recorded.actor

    @property
    def recorded_at(self) -> datetime.datetime:
        return self.recorded.recorded_at


# A replay's shadow model for each live model a projection writes.
ModelMap = Mapping[type[Model], type[Model]]


@dataclasses.dataclass(frozen=True)
class Batch:
    """The events one `apply` call writes, and the model classes to write them to: the live
    tables, or a replay's shadow copies of them."""

    events: Sequence[Envelope[DomainEvent]]
    models: ModelMap = dataclasses.field(default_factory=dict)

    def model(self, model: type[Model]) -> type[Model]:
        return self.models.get(model, model)


@dataclasses.dataclass(frozen=True)
class Table:
    """A table a projection writes, for the replay's shadow copy and swap.

    `key`: the columns that identify a row across a rebuild (empty: the table's rows are replaced
    wholesale). `scope`: column values that select this projection's rows when several projections
    share the table. `operational`: columns the log does not hold (claims), kept through a swap.
    """

    model: type[Model]
    key: tuple[str, ...] = ()
    scope: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    operational: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Projection:
    name: str
    handles: Collection[type[DomainEvent]]
    apply: Callable[[Batch], None]
    """Writes a whole batch; it must not call gateways or append events (replay runs it too)."""
    tables: tuple[Table, ...] = ()
    title: str = ""

    @property
    def types(self) -> list[str]:
        """The type names of the events it handles, as the log stores them."""
        return sorted({cls.event_type for cls in self.handles})


registry: Registry[Projection] = Registry("projection")


# --- one row per key ---------------------------------------------------------------------------------

Row = dict[str, Any]
# A handler takes the envelope of the event class it is registered for (Envelope[OrderPlaced]).
RowHandler = Callable[[Row | None, Envelope[Any]], Row | None]


class HandlersByName(Mapping[type[DomainEvent], RowHandler]):
    """Handlers keyed by event class, some of them named by another app's published type name
    (payments folds orders' OrderPlaced without importing orders). The names become classes
    when first used, once every app has registered its events; a name no app registers is left
    out, and the system checks name it."""

    def __init__(
        self,
        by_name: Mapping[str, RowHandler],
        by_class: Mapping[type[DomainEvent], RowHandler] | None = None,
    ) -> None:
        self._by_name = dict(by_name)
        self._by_class = dict(by_class or {})
        self._resolved: dict[type[DomainEvent], RowHandler] | None = None

    def _handlers(self) -> dict[type[DomainEvent], RowHandler]:
        if self._resolved is not None:
            return self._resolved
        known = registered_types()
        handlers = {known[n]: h for n, h in self._by_name.items() if n in known} | self._by_class
        if len(handlers) == len(self._by_name) + len(self._by_class):
            self._resolved = handlers  # all found: they never change again
        return handlers

    def unknown_names(self) -> list[str]:
        """The names no app registers (yet)."""
        known = registered_types()
        return sorted(n for n in self._by_name if n not in known)

    def __getitem__(self, cls: type[DomainEvent]) -> RowHandler:
        return self._handlers()[cls]

    def __iter__(self) -> Iterator[type[DomainEvent]]:
        return iter(self._handlers())

    def __len__(self) -> int:
        return len(self._handlers())


Change = tuple[Row | None, Row, Envelope[Any]]
"""One row before and after an event changed it (before: None when the event created it)."""


@dataclasses.dataclass(frozen=True)
class Derived:
    """Tables a row projection also writes from its rows' changes (a rollup of them, say): in the
    batch's transaction, after the rows, so they move with them and a replay rebuilds them too."""

    tables: tuple[Table, ...]
    write: Callable[[Batch, Sequence[Change]], None]


def row_projection(
    *,
    name: str,
    model: type[Model],
    key_field: str,
    key: Callable[[Envelope[Any]], Hashable | None],
    handlers: Mapping[type[DomainEvent], RowHandler],
    scope: Mapping[str, Any] | None = None,
    operational: tuple[str, ...] = (),
    title: str = "",
    derived: Derived | None = None,
) -> Projection:
    """A read model with one row per key, written a batch at a time in two statements.

    `key(envelope)` names the row an event is about (None: not this projection's business).
    `handlers[event class](row, envelope)` gets that row as a dict (None if there is none yet) and
    returns it changed, or None to leave it alone. Rows are loaded with one SELECT, folded in
    memory in log order, and written back with one INSERT ... ON CONFLICT DO UPDATE. `derived`
    gets every change of the batch, in log order.
    """
    scope = dict(scope or {})
    fields = [f for f in model._meta.concrete_fields if not (f.primary_key and f.name != key_field)]
    projected = [f.name for f in fields if f.name not in operational]
    folder = _RowFolder(
        model=model,
        key_field=key_field,
        key=key,
        handlers=handlers,
        scope=scope,
        projected=projected,
        updated=[f for f in projected if f != key_field and f not in scope],
        unique=[*scope, key_field],
        operational=operational,
        derived=derived,
    )
    own = Table(model=model, key=tuple(folder.unique), scope=scope, operational=operational)
    return Projection(
        name=name,
        title=title,
        handles=handlers,  # its keys, read when used: HandlersByName resolves late
        apply=folder.apply,
        tables=(own, *(derived.tables if derived else ())),
    )


@dataclasses.dataclass(frozen=True)
class _RowFolder:
    """The `apply` of a row projection: load the batch's rows, fold its events into them, upsert."""

    model: type[Model]
    key_field: str
    key: Callable[[Envelope[Any]], Hashable | None]
    handlers: Mapping[type[DomainEvent], RowHandler]
    scope: dict[str, Any]
    projected: list[str]
    updated: list[str]
    unique: list[str]
    operational: tuple[str, ...]
    derived: Derived | None = None

    def apply(self, batch: Batch) -> None:
        target = batch.model(self.model)
        keyed = [(self.key(e), e) for e in batch.events]
        keys = {k for k, _ in keyed if k is not None}
        if not keys:
            return
        rows: dict[Any, Row] = {
            r[self.key_field]: r
            for r in target._default_manager.filter(**self.scope, **{f"{self.key_field}__in": keys}).values(
                *self.projected
            )
        }
        changes: list[Change] = []
        touched = self._fold(rows, keyed, changes)
        if touched:
            _upsert(
                target,
                [rows[k] for k in touched],
                unique=self.unique,
                updated=self.updated,
                fresh=self.operational,
            )
        if self.derived and changes:
            self.derived.write(batch, changes)

    def _fold(
        self, rows: dict[Any, Row], keyed: list[tuple[Hashable | None, Envelope[Any]]], changes: list[Change]
    ) -> set[Any]:
        """Apply each event's handler to its row, in log order; the keys of the rows changed.
        Each change is added to `changes` when a derived table wants them."""
        touched: set[Any] = set()
        record = self.derived is not None
        get, scope, key_field = self.handlers.get, self.scope, self.key_field
        for k, envelope in keyed:
            if k is None:
                continue
            handler = get(type(envelope.event))
            changed = handler(rows.get(k), envelope) if handler else None
            if changed is not None:
                after = {**changed, **scope, key_field: k}
                if record:
                    changes.append((rows.get(k), after, envelope))
                rows[k] = after
                touched.add(k)
        return touched


def _upsert(
    model: type[Model],
    rows: list[Row],
    *,
    unique: list[str],
    updated: list[str],
    fresh: tuple[str, ...],
) -> None:
    """INSERT ... ON CONFLICT (unique) DO UPDATE SET (updated) for all rows, in one statement
    (Django's bulk_create spends more time preparing values than the database spends writing
    them). Columns in `fresh` (operational state such as claims) get their defaults on insert
    and are never overwritten."""
    meta = model._meta
    fields = [model_field(model, name) for name in rows[0]]
    fields += [f for f in meta.concrete_fields if f.name in fresh and not f.primary_key]
    db = backend()
    values = []
    for f in fields:
        convert = db.converter(f)
        default = f.get_default() if any(f.name not in row for row in rows) else None
        values.append([convert(row.get(f.name, default)) for row in rows])
    db.upsert(
        model,
        fields,
        values,
        unique=[column(model_field(model, n)) for n in unique],
        updated=[column(model_field(model, n)) for n in updated],
    )

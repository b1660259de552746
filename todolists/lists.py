"""Declaring a TODO list: which events open an item, which close it, and who works it.

A list is a projection run by the eventstore engine, so `replay_projections` rebuilds it. An item
leaves its list when a closing event is recorded, and for no other reason: the automation never
deletes items. A list holds one item per key; a second opening event starts it afresh.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeGuard

from eventstore.events import DomainEvent
from eventstore.projections import Envelope, HandlersByName, Projection, Row, RowHandler, row_projection
from eventstore.projections import registry as projection_registry
from eventstore.registry import Registry
from todolists.events import TodoAttemptFailed, TodoItemParked, TodoRetryRequested
from todolists.models import TodoItem
from todolists.rollup import rollup_derived

Work = Callable[..., Mapping[str, Exception | None]]
"""work(items: Sequence[TodoItem], *, deadline: float) -> {key: None when done, or the error}."""

EventTypes = tuple[type[DomainEvent] | str, ...]
"""Event classes, as a list declares them; kept as their type names (a name is checked by
todolists/checks.py, so an extension may name a type it cannot import)."""


def type_names(events: Iterable[type[DomainEvent] | str]) -> tuple[str, ...]:
    """The registered type names of these event classes (names pass through)."""
    return tuple(e if isinstance(e, str) else e.event_type for e in events)


@dataclasses.dataclass(frozen=True, init=False)
class TodoList:
    name: str
    title: str
    opened_by: tuple[str, ...]
    closed_by: tuple[str, ...]
    work: Work
    """The automation, called with a claimed batch: `work(items, deadline=...)` re-reads the
    batch's streams, acts item by item (starting none after `deadline`, a time.monotonic() value)
    and records each outcome as events. It returns {key: None (done, or nothing left to do) or
    the item's error} for the items it tried; the runner records every error as a failed attempt
    (TodoAttemptFailed) and releases the rest."""
    key_field: str
    """The field of the opening and closing events that names the item (e.g. an order id)."""
    stuck_after: datetime.timedelta | None = None
    """An item due for longer than this marks the list stuck; None: TODO_STUCK_AFTER_SECONDS."""
    records: tuple[str, ...] = ()
    """Event types the automation (`work`) records, for the process map."""
    story_url_name: str = ""
    """The URL name of the page telling an item's business case's story, reversed with its
    correlation id (e.g. "admin:orders_order_change"); empty: another list's (see the registry)."""

    def __init__(
        self,
        *,
        name: str,
        title: str,
        opened_by: EventTypes,
        closed_by: EventTypes,
        work: Work,
        key_field: str,
        stuck_after: datetime.timedelta | None = None,
        records: EventTypes = (),
        story_url_name: str = "",
    ) -> None:
        # Declared as classes or names; kept as names, which readers (the runner, the process
        # map, the admin) compare.
        fields = {
            "name": name,
            "title": title,
            "opened_by": type_names(opened_by),
            "closed_by": type_names(closed_by),
            "work": work,
            "key_field": key_field,
            "stuck_after": stuck_after,
            "records": type_names(records),
            "story_url_name": story_url_name,
        }
        for field, value in fields.items():
            object.__setattr__(self, field, value)

    @property
    def projection_name(self) -> str:
        return f"todo:{self.name}"


class TodoListRegistry(Registry[TodoList]):
    """Registering a list also registers its projection with the engine."""

    def register(self, todo: TodoList) -> TodoList:
        super().register(todo)
        projection_registry.register(_projection(todo))
        return todo

    def unregister(self, name: str) -> TodoList | None:
        todo = super().unregister(name)
        if todo:
            projection_registry.unregister(todo.projection_name)
        return todo

    def affected_by(self, event_types: Iterable[type[DomainEvent] | str]) -> list[str]:
        """The projections of the lists these events open or close."""
        names = set(type_names(event_types))
        return [t.projection_name for t in self.all() if names & {*t.opened_by, *t.closed_by}]

    def story_url_name(self, list_name: str = "") -> str:
        """The story page of a list's business cases: its own, else the first another list
        declares (a business case is one correlation id, whichever list it is on); "" if none."""
        own = self._items[list_name].story_url_name if list_name in self._items else ""
        return own or next((t.story_url_name for t in self.all() if t.story_url_name), "")

    def key_fields(self) -> list[str]:
        """The names the lists give their keys (e.g. order_id), for column headers."""
        return sorted({t.key_field for t in self.all()})

    def opened_by(self, event_types: Iterable[type[DomainEvent] | str]) -> list[str]:
        names = set(type_names(event_types))
        return [t.name for t in self.all() if names & set(t.opened_by)]


registry = TodoListRegistry("TODO list")


def _projection(todo: TodoList) -> Projection:
    """The list as a row projection over TodoItem, scoped to its own rows (list_name)."""

    def key(e: Envelope[Any]) -> str | None:
        if e.type in RUNNER_EVENTS:
            return e.event.key if e.event.list == todo.name else None
        return str(getattr(e.event, todo.key_field))

    # A list's opening and closing events are other apps', named by their published type names.
    by_name: dict[str, RowHandler] = {t: _on_open for t in todo.opened_by}
    by_name.update({t: _on_close for t in todo.closed_by})
    handlers = HandlersByName(
        by_name,
        {TodoAttemptFailed: _on_attempt_failed, TodoItemParked: _on_parked, TodoRetryRequested: _on_retry},
    )
    return row_projection(
        name=todo.projection_name,
        title=todo.title,
        model=TodoItem,
        key_field="key",
        key=key,
        handlers=handlers,
        scope={"list_name": todo.name},
        operational=("id", "claimed_by", "claimed_until", "claimed_at", "task_started_at"),
        derived=rollup_derived(list_name=todo.name),
    )


# --- the handlers every list's projection shares --------------------------------------------------


def _on_open(row: Row | None, e: Envelope[Any]) -> Row:
    # A second opening event starts the item afresh.
    return {
        "correlation_id": e.correlation_id,
        "payload": e.recorded.data,
        "opened_at": e.recorded_at,
        "opened_position": e.position,
        "opened_by": e.type,
        **OPENED,
    }


def _open(row: Row | None) -> TypeGuard[Row]:
    """An item not done: closing and runner's events change it (else nothing)."""
    return row is not None and row["status"] != TodoItem.Status.DONE


def _on_close(row: Row | None, e: Envelope[Any]) -> Row | None:
    # A closing event for a key with no open item closes nothing (e.g. OrderConfirmed for the
    # cancel list).
    if not _open(row):
        return None
    return {
        **row,
        "status": TodoItem.Status.DONE,
        "closed_at": e.recorded_at,
        "closed_position": e.position,
        "closed_by": e.type,
        "next_attempt_at": None,
    }


def _on_attempt_failed(row: Row | None, e: Envelope[Any]) -> Row | None:
    if not _open(row):
        return None
    failed = e.event
    return {**row, "attempts": failed.attempt, "last_error": failed.error, "next_attempt_at": failed.retry_at}


def _on_parked(row: Row | None, e: Envelope[Any]) -> Row | None:
    if not _open(row):
        return None
    # The last error stays the work's own; the operator's or runner's reason has its column.
    return {
        **row,
        "status": TodoItem.Status.PARKED,
        "parked_at": e.recorded_at,
        "parked_reason": e.event.reason,
        "next_attempt_at": None,
    }


def _on_retry(row: Row | None, e: Envelope[Any]) -> Row | None:
    if not _open(row):
        return None
    # Due from the retry on, so "longest due" counts from then, not from the opening.
    return {**row, **RETRIED, "next_attempt_at": e.recorded_at}


# The runner's and operators' events about items, for every list (todolists/events.py).
RUNNER_EVENTS = frozenset(e.event_type for e in (TodoAttemptFailed, TodoItemParked, TodoRetryRequested))

# Back to open, as if new: the history of attempts stays in the log.
RETRIED = {
    "status": TodoItem.Status.OPEN,
    "attempts": 0,
    "last_error": "",
    "next_attempt_at": None,
    "parked_at": None,
    "parked_reason": "",
}

# The projected state of a freshly opened item.
OPENED = {
    **RETRIED,
    "closed_at": None,
    "closed_position": None,
    "closed_by": "",
}

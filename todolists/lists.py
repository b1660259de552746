"""Declaring a TODO list: which events open an item, which close it, and who works it.

A list is a projection run by the eventstore engine, so `replay_projections` rebuilds it. An item
leaves its list when a closing event is recorded, and for no other reason: the automation never
deletes items. A list holds one item per key; a second opening event starts it afresh.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable, Mapping

from eventstore.projections import Envelope, Projection, Row, RowHandler, row_projection
from eventstore.projections import registry as projection_registry
from eventstore.registry import Registry
from todolists.events import TodoAttemptFailed, TodoItemParked, TodoRetryRequested
from todolists.models import TodoItem

Work = Callable[..., Mapping[str, Exception | None]]
"""work(items: Sequence[TodoItem], *, deadline: float) -> {key: None when done, or the error}."""


@dataclasses.dataclass(frozen=True)
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
    """An item due for longer than this marks the list stuck; None: settings.TODO_STUCK_AFTER_SECONDS."""
    records: tuple[str, ...] = ()
    """Event types the automation (`work`) records, for the process map."""

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

    def affected_by(self, event_types: set[str]) -> list[str]:
        """The projections of the lists these events open or close."""
        return [t.projection_name for t in self.all() if event_types & {*t.opened_by, *t.closed_by}]

    def opened_by(self, event_types: set[str]) -> list[str]:
        return [t.name for t in self.all() if event_types & set(t.opened_by)]


registry = TodoListRegistry("TODO list")


def _projection(todo: TodoList) -> Projection:
    """The list as a row projection over TodoItem, scoped to its own rows (list_name)."""

    def key(e: Envelope) -> str | None:
        if e.type in RUNNER_EVENTS:
            return e.event.key if e.event.list == todo.name else None
        return str(getattr(e.event, todo.key_field))

    def on_open(row: Row | None, e: Envelope) -> Row:
        # A second opening event starts the item afresh.
        return {
            "correlation_id": e.correlation_id,
            "payload": e.recorded.data,
            "opened_at": e.recorded_at,
            "opened_position": e.position,
            "opened_by": e.type,
            **OPENED,
        }

    def still_open(row: Row | None) -> bool:
        return row is not None and row["status"] != TodoItem.Status.DONE

    def on_close(row: Row | None, e: Envelope) -> Row | None:
        # A closing event for a key with no open item closes nothing (e.g. OrderConfirmed for the
        # cancel list).
        if not still_open(row):
            return None
        return {
            **row,
            "status": TodoItem.Status.DONE,
            "closed_at": e.recorded_at,
            "closed_position": e.position,
            "closed_by": e.type,
            "next_attempt_at": None,
        }

    def on_attempt_failed(row: Row | None, e: Envelope) -> Row | None:
        if not still_open(row):
            return None
        failed = e.event
        return {
            **row,
            "attempts": failed.attempt,
            "last_error": failed.error,
            "next_attempt_at": failed.retry_at,
        }

    def on_parked(row: Row | None, e: Envelope) -> Row | None:
        if not still_open(row):
            return None
        # The last error stays the work's own; the operator's or runner's reason has its column.
        return {
            **row,
            "status": TodoItem.Status.PARKED,
            "parked_at": e.recorded_at,
            "parked_reason": e.event.reason,
            "next_attempt_at": None,
        }

    def on_retry(row: Row | None, e: Envelope) -> Row | None:
        if not still_open(row):
            return None
        # Due from the retry on: "longest due" counts from here, not from when the item opened.
        return {**row, **RETRIED, "next_attempt_at": e.recorded_at}

    handlers: dict[str, RowHandler] = {t: on_open for t in todo.opened_by}
    handlers |= {t: on_close for t in todo.closed_by}
    handlers |= {
        "TodoAttemptFailed": on_attempt_failed,
        "TodoItemParked": on_parked,
        "TodoRetryRequested": on_retry,
    }
    return row_projection(
        name=todo.projection_name,
        title=todo.title,
        model=TodoItem,
        key_field="key",
        key=key,
        handlers=handlers,
        scope={"list_name": todo.name},
        operational=("id", "claimed_by", "claimed_until"),
    )


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

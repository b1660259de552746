"""Declaring a TODO list: which events open an item, which close it, and who works it.

A list is a projection run by the eventstore engine, so `replay_projections` rebuilds it. An item
leaves its list when a closing event is recorded, and for no other reason: the automation never
deletes items. A list holds one item per key; a second opening event starts it afresh.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
from collections.abc import Callable

from eventstore.projections import Projection
from eventstore.projections import registry as projection_registry
from eventstore.registry import Registry
from eventstore.store import RecordedEvent
from todolists.models import TodoItem

Work = Callable[[TodoItem], None]
RecordFailure = Callable[..., None]


@dataclasses.dataclass(frozen=True)
class TodoList:
    name: str
    title: str
    opened_by: tuple[str, ...]
    closed_by: tuple[str, ...]
    work: Work
    """The automation: does the work for one item and records the outcome as events."""
    key_field: str = "order_id"
    failed_by: tuple[str, ...] = ()
    """Domain events recording a failed attempt (with `attempt`, `error`, `retry_at` fields)."""
    record_failure: RecordFailure | None = None
    """Appends one of `failed_by` (keyword args: item, attempt, error, retry_at); default TodoAttemptFailed."""
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

    def opened_by(self, event_types: set[str]) -> list[str]:
        return [t.name for t in self.all() if event_types & set(t.opened_by)]


registry = TodoListRegistry("TODO list")


# Marks a row kept through a replay until an opening event rewrites it (positions start at 1).
_NOT_REOPENED = 0


def _reset_in_place(list_name: str) -> Callable[[], None]:
    """Prepare a replay without deleting rows: the rebuild rewrites each row in place (by list and
    key), so the claim columns, which the log does not hold, stay with the row, and a worker
    renewing or releasing its claim during the replay still finds it. Rows no opening event
    rewrote are removed at the end."""
    items = TodoItem.objects.filter(list_name=list_name)
    items.update(opened_position=_NOT_REOPENED)
    return lambda: items.filter(opened_position=_NOT_REOPENED).delete()


# The projected state of a freshly opened item.
OPENED = {
    "status": TodoItem.Status.OPEN,
    "closed_at": None,
    "closed_position": None,
    "closed_by": "",
    "attempts": 0,
    "last_error": "",
    "next_attempt_at": None,
    "parked_at": None,
}


def _projection(todo: TodoList) -> Projection:
    def key(event: RecordedEvent) -> str:
        return str(event.data[todo.key_field])

    def mine(event: RecordedEvent) -> bool:
        return event.data.get("list") == todo.name

    def items(k: str):
        return TodoItem.objects.filter(list_name=todo.name, key=k)

    def on_open(event: RecordedEvent) -> None:
        # One upsert (INSERT ... ON CONFLICT DO UPDATE) of the projected columns only; the claim
        # columns are operational state and stay as they are.
        item = TodoItem(
            list_name=todo.name,
            key=key(event),
            correlation_id=event.correlation_id,
            payload=event.data,
            opened_at=event.recorded_at,
            opened_position=event.position,
            opened_by=event.type,
            **OPENED,
        )
        TodoItem.objects.bulk_create(
            [item],
            update_conflicts=True,
            unique_fields=["list_name", "key"],
            update_fields=["correlation_id", "payload", "opened_at", "opened_position", "opened_by", *OPENED],
        )

    def on_close(event: RecordedEvent) -> None:
        # A closing event for a key with no item closes nothing (e.g. OrderConfirmed for the
        # cancel list). Commands keep closings after openings (see order_cancel's guard); should
        # an item still outlive its outcome, the runner records NoOutcome and parks it in view.
        items(key(event)).exclude(status=TodoItem.Status.DONE).update(
            status=TodoItem.Status.DONE,
            closed_at=event.recorded_at,
            closed_position=event.position,
            closed_by=event.type,
        )

    def record_attempt(qs, event: RecordedEvent) -> None:
        qs.exclude(status=TodoItem.Status.DONE).update(
            attempts=event.data["attempt"],
            last_error=event.data["error"],
            next_attempt_at=datetime.datetime.fromisoformat(event.data["retry_at"]),
        )

    def on_domain_failure(event: RecordedEvent) -> None:
        record_attempt(items(key(event)), event)

    def on_attempt_failed(event: RecordedEvent) -> None:
        if mine(event):
            record_attempt(items(event.data["key"]), event)

    def on_parked(event: RecordedEvent) -> None:
        if mine(event):
            items(event.data["key"]).exclude(status=TodoItem.Status.DONE).update(
                status=TodoItem.Status.PARKED, parked_at=event.recorded_at, last_error=event.data["reason"]
            )

    def on_retry(event: RecordedEvent) -> None:
        if mine(event):
            items(event.data["key"]).exclude(status=TodoItem.Status.DONE).update(
                status=TodoItem.Status.OPEN, parked_at=None, attempts=0, next_attempt_at=None
            )

    handlers = {t: on_open for t in todo.opened_by}
    handlers |= {t: on_close for t in todo.closed_by}
    handlers |= {t: on_domain_failure for t in todo.failed_by}
    handlers |= {
        "TodoAttemptFailed": on_attempt_failed,
        "TodoItemParked": on_parked,
        "TodoRetryRequested": on_retry,
    }
    return Projection(
        name=todo.projection_name,
        title=todo.title,
        handlers=handlers,
        reset=functools.partial(_reset_in_place, todo.name),
    )

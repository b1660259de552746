"""Declaring a TODO list: which events open an item, which close it, and who works it.

A list is a projection run by the eventstore engine, so `replay_projections` rebuilds it. An item
leaves its list when a closing event is recorded, and for no other reason: the automation never
deletes items. Each key is opened once per list.
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


def _reset_keeping_claims(list_name: str) -> Callable[[], None]:
    """Empty the list for a replay, but hand back the live claims afterwards: a worker may be in
    the middle of an item, and a rebuilt unclaimed row would invite a second worker."""
    items = TodoItem.objects.filter(list_name=list_name)
    claims = list(items.exclude(claimed_until=None).values_list("key", "claimed_by", "claimed_until"))
    items.delete()

    def restore() -> None:
        for key, claimed_by, claimed_until in claims:
            items.filter(key=key).update(claimed_by=claimed_by, claimed_until=claimed_until)

    return restore


def _projection(todo: TodoList) -> Projection:
    def key(event: RecordedEvent) -> str:
        return str(event.data[todo.key_field])

    def mine(event: RecordedEvent) -> bool:
        return event.data.get("list") == todo.name

    def items(event: RecordedEvent, k: str | None = None):
        return TodoItem.objects.filter(list_name=todo.name, key=k if k is not None else event.data["key"])

    def on_open(event: RecordedEvent) -> None:
        # One item per key, opened once: INSERT ... ON CONFLICT DO NOTHING.
        TodoItem.objects.bulk_create(
            [
                TodoItem(
                    list_name=todo.name,
                    key=key(event),
                    correlation_id=event.correlation_id,
                    payload=event.data,
                    opened_at=event.recorded_at,
                    opened_position=event.position,
                    opened_by=event.type,
                )
            ],
            ignore_conflicts=True,
        )

    def on_close(event: RecordedEvent) -> None:
        # A closing event for a key with no item closes nothing (e.g. OrderConfirmed for the
        # cancel list). Commands keep closings after openings (see order_cancel's guard); should
        # an item still outlive its outcome, the runner records NoOutcome and parks it in view.
        items(event, key(event)).exclude(status=TodoItem.Status.DONE).update(
            status=TodoItem.Status.DONE,
            closed_at=event.recorded_at,
            closed_position=event.position,
            closed_by=event.type,
        )

    def record_attempt(qs, event: RecordedEvent) -> None:
        qs.update(
            attempts=event.data["attempt"],
            last_error=event.data["error"],
            next_attempt_at=datetime.datetime.fromisoformat(event.data["retry_at"]),
        )

    def on_domain_failure(event: RecordedEvent) -> None:
        record_attempt(items(event, key(event)), event)

    def on_attempt_failed(event: RecordedEvent) -> None:
        if mine(event):
            record_attempt(items(event), event)

    def on_parked(event: RecordedEvent) -> None:
        if mine(event):
            items(event).exclude(status=TodoItem.Status.DONE).update(
                status=TodoItem.Status.PARKED, parked_at=event.recorded_at, last_error=event.data["reason"]
            )

    def on_retry(event: RecordedEvent) -> None:
        if mine(event):
            items(event).exclude(status=TodoItem.Status.DONE).update(
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
        reset=functools.partial(_reset_keeping_claims, todo.name),
    )

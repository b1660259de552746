"""Why is this item on its list? Its story, read from the log (not from the projected row), so
an operator's park never hides the gateway's last error."""

from __future__ import annotations

import dataclasses
import datetime

from eventstore.store import RecordedEvent, correlation_read
from todolists.lists import registry
from todolists.models import TodoItem

# The runner's failed attempts (every list's, since payments' own PaymentAttemptFailed was folded in).
ATTEMPT_TYPES = ("TodoAttemptFailed",)
OPERATOR_TYPES = ("TodoItemParked", "TodoRetryRequested")


@dataclasses.dataclass(frozen=True)
class Attempt:
    position: int
    at: datetime.datetime
    attempt: int
    error: str
    retry_at: datetime.datetime | None


@dataclasses.dataclass(frozen=True)
class OperatorAction:
    position: int
    at: datetime.datetime
    what: str
    actor: str
    reason: str


@dataclasses.dataclass(frozen=True)
class ItemWhy:
    opened_by: str
    opened_position: int
    closes_on: tuple[str, ...]
    closed_by: str
    closed_position: int | None
    attempts: list[Attempt]
    actions: list[OperatorAction]


def _field(event: RecordedEvent, name: str, default=None):
    # Prefer the typed event; the raw data if the type is not registered in this process.
    try:
        return getattr(event.event, name)
    except Exception:
        return event.data.get(name, default)


def todo_item_why(*, item: TodoItem) -> ItemWhy:
    """The opening event, the closing event types, every failed attempt and operator action of
    this item since it was (last) opened: one query on the log, by correlation id."""
    todo = registry.get(item.list_name)
    types = sorted({*ATTEMPT_TYPES, *OPERATOR_TYPES})
    attempts, actions = [], []
    for e in correlation_read(correlation_id=item.correlation_id, types=types):
        if e.position < item.opened_position:
            continue  # an earlier life of this item (a second opening starts afresh)
        if _field(e, "list") != item.list_name or _field(e, "key") != item.key:
            continue  # another list's item of the same business case
        if e.type in OPERATOR_TYPES:
            what = "parked" if e.type == "TodoItemParked" else "retry requested"
            actions.append(OperatorAction(e.position, e.recorded_at, what, e.actor, _field(e, "reason", "")))
        else:
            attempts.append(
                Attempt(
                    e.position,
                    e.recorded_at,
                    _field(e, "attempt", 0),
                    _field(e, "error", ""),
                    _field(e, "retry_at"),
                )
            )
    return ItemWhy(
        opened_by=item.opened_by,
        opened_position=item.opened_position,
        closes_on=todo.closed_by,
        closed_by=item.closed_by,
        closed_position=item.closed_position,
        attempts=attempts,
        actions=actions,
    )

"""Why is this item on its list? Its story, read from the log (not from the projected row), so
an operator's park never hides the gateway's last error."""

from __future__ import annotations

import dataclasses
import datetime

from eventstore.store import correlation_read
from todolists.events import TodoAttemptFailed, TodoItemParked, TodoRetryRequested
from todolists.lists import RUNNER_EVENTS, registry
from todolists.models import TodoItem

# The events about one item, read by correlation id (RUNNER_EVENTS); each names its list and key.
RunnerEvent = (TodoAttemptFailed, TodoItemParked, TodoRetryRequested)


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


def todo_item_why(*, item: TodoItem) -> ItemWhy:
    """The opening event, the closing event types, every failed attempt and operator action of
    this item since it was (last) opened: one query on the log, by correlation id."""
    todo = registry.get(item.list_name)
    attempts, actions = [], []
    for e in correlation_read(correlation_id=item.correlation_id, types=sorted(RUNNER_EVENTS)):
        if e.position < item.opened_position:
            continue  # an earlier life of this item (a second opening starts afresh)
        event = e.event
        if not isinstance(event, RunnerEvent) or event.list != item.list_name or event.key != item.key:
            continue  # another list's item of the same business case
        if isinstance(event, TodoAttemptFailed):
            attempts.append(Attempt(e.position, e.recorded_at, event.attempt, event.error, event.retry_at))
        else:
            what = "parked" if isinstance(event, TodoItemParked) else "retry requested"
            actions.append(
                OperatorAction(e.position, e.recorded_at, what, e.actor, getattr(event, "reason", ""))
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

"""What operators (and the runner, when it gives up) do to an item: each is an event on the
item's own stream, so a replay repeats it and the admin shows who did it."""

from __future__ import annotations

from eventstore.store import event_append
from todolists.events import TodoItemParked, TodoRetryRequested
from todolists.models import TodoItem


def todo_stream(*, list_name: str, key: str) -> str:
    return f"todo-{list_name}-{key}"


def todo_item_park(*, item: TodoItem, reason: str, actor: str) -> None:
    """Take the item out of the automation's hands until someone asks for a retry."""
    event_append(
        stream_id=todo_stream(list_name=item.list_name, key=item.key),
        events=[TodoItemParked(list=item.list_name, key=item.key, reason=reason)],
        expected_version=None,
        correlation_id=item.correlation_id,
        actor=actor,
    )


def todo_item_retry(*, item: TodoItem, actor: str, reason: str = "") -> None:
    """An operator's "retry now": recorded as an event, which reopens a parked or waiting item."""
    if item.status == TodoItem.Status.DONE:
        raise ValueError(f"{item.list_name} item {item.key} is done; there is nothing to retry.")
    event_append(
        stream_id=todo_stream(list_name=item.list_name, key=item.key),
        events=[TodoRetryRequested(list=item.list_name, key=item.key, reason=reason)],
        expected_version=None,
        correlation_id=item.correlation_id,
        actor=actor,
        # Nothing to check, but take the business case's lock: a decision made under it (giving up
        # a parked payment) either sees this retry or is seen by it. The append hook nudges.
        guard=lambda: None,
    )

"""Pausing a list: the kill switch while, say, the gateway misbehaves.

A pause and a resume are events on the list's own stream (`todo-list-<name>`), with the operator
and the reason, so a replay reproduces the paused state. While a list is paused no cluster works
it (the runner asks `todo_list_paused` before each claim, from the log itself, so a lagging read
model cannot let a batch through); its items keep arriving, and a resume takes them where they
were. The read model `TodoListPause` is what the dashboard and the verdict show.
"""

from __future__ import annotations

from typing import Any

from eventstore.events import DomainEvent, event_type
from eventstore.models import Event
from eventstore.projections import Envelope, Row, row_projection
from eventstore.projections import registry as projection_registry
from eventstore.store import event_append
from todolists.lists import registry
from todolists.models import TodoListPause
from todolists.nudge import todo_lists_nudge

PROJECTION = "todo-list-pauses"


@event_type("TodoListPaused")
class TodoListPaused(DomainEvent):
    list: str
    reason: str


@event_type("TodoListResumed")
class TodoListResumed(DomainEvent):
    list: str
    reason: str


class PauseRefused(ValueError):
    """The pause or resume was refused; the message says why. Nothing was appended."""


def list_stream(*, list_name: str) -> str:
    return f"todo-list-{list_name}"


def _on_change(row: Row | None, e: Envelope[Any]) -> Row:
    return {
        "paused": e.type == TodoListPaused.event_type,
        "actor": e.actor,
        "reason": e.event.reason,
        "changed_at": e.recorded_at,
        "position": e.position,
    }


projection_registry.register(
    row_projection(
        name=PROJECTION,
        title="Paused lists",
        model=TodoListPause,
        key_field="list_name",
        key=lambda e: e.event.list,
        handlers={TodoListPaused: _on_change, TodoListResumed: _on_change},
        operational=("id",),
    )
)


def todo_list_paused(*, list_name: str) -> bool:
    """Is the list paused, by the log (one indexed query on the list's stream)?"""
    return bool(todo_lists_paused(list_names=[list_name]))


def todo_lists_paused(*, list_names: list[str]) -> set[str]:
    """Which of these lists are paused, by the log: one query over their streams, which hold
    only the operators' pauses and resumes."""
    streams = {list_stream(list_name=name): name for name in list_names}
    last: dict[str, str] = {}
    for stream, type_ in (
        Event.objects.filter(stream_id__in=list(streams))
        .order_by("position")
        .values_list("stream_id", "type")
    ):
        last[streams[stream]] = type_
    return {name for name, type_ in last.items() if type_ == TodoListPaused.event_type}


def _change(*, list_name: str, reason: str, actor: str, pause: bool) -> None:
    if list_name not in registry.names():
        raise PauseRefused(f"there is no list {list_name!r} (known: {', '.join(registry.names())})")
    reason = reason.strip()
    if not reason:
        raise PauseRefused("a reason is required: it stays in the log beside the pause")

    def not_already() -> None:
        # Under the append lock: two operators pausing at once record one pause.
        if todo_list_paused(list_name=list_name) == pause:
            raise PauseRefused(f"{list_name} is already {'paused' if pause else 'running'}")

    event = (TodoListPaused if pause else TodoListResumed)(list=list_name, reason=reason)
    event_append(
        stream_id=list_stream(list_name=list_name),
        events=[event],
        expected_version=None,
        correlation_id=list_stream(list_name=list_name),
        actor=actor,
        guard=not_already,
    )


def todo_list_pause(*, list_name: str, reason: str, actor: str) -> None:
    """Stop every cluster from working the list until someone resumes it; its items keep coming."""
    _change(list_name=list_name, reason=reason, actor=actor, pause=True)


def todo_list_resume(*, list_name: str, reason: str, actor: str) -> None:
    """Let the clusters work the list again, from where it was; nudged at once."""
    _change(list_name=list_name, reason=reason, actor=actor, pause=False)
    todo_lists_nudge(list_names=[list_name])

"""What operators (and the runner, when it gives up) do to an item: each is an event on the
item's own stream, so a replay repeats it and the admin shows who did it. And what another app
may ask about an item before it decides for an operator (`todo_item_parked`)."""

from __future__ import annotations

import dataclasses
import datetime

from django.db.models import BooleanField, ExpressionWrapper, F, Q
from django.db.models.functions import Now

from eventstore.store import event_append
from todolists.errors import Refusal, TodoRefused
from todolists.events import TodoItemParked, TodoRetryRequested
from todolists.models import TodoItem


def todo_stream(*, list_name: str, key: str) -> str:
    return f"todo-{list_name}-{key}"


def todo_item_park(*, item: TodoItem, reason: str, actor: str) -> None:
    """Take an open item out of the automation's hands until someone asks for a retry."""
    if item.status != TodoItem.Status.OPEN:
        raise TodoRefused(
            f"{item.list_name} item {item.key} is {item.status}; only an open item can be parked.",
            code=Refusal.DONE if item.status == TodoItem.Status.DONE else Refusal.NOT_FOUND,
        )
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
        raise TodoRefused(
            f"{item.list_name} item {item.key} is done; there is nothing to retry.", code=Refusal.DONE
        )
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


@dataclasses.dataclass(frozen=True)
class ParkedItem:
    list_name: str
    key: str
    parked_for: datetime.timedelta
    """How long it has been parked, by the database's clock (the one leases use)."""


def todo_item_parked(*, list_name: str, key: str) -> ParkedItem:
    """The item, if it is parked and no worker holds a live lease on it; else TodoRefused
    (NOT_FOUND, NOT_PARKED or HELD). For a decision another app takes in an operator's place."""
    item = (
        TodoItem.objects.filter(list_name=list_name, key=key)
        .annotate(
            parked_for=Now() - F("parked_at"),
            held=ExpressionWrapper(Q(claimed_until__gte=Now()), output_field=BooleanField()),
        )
        .first()
    )
    if item is None:
        raise TodoRefused(f"{list_name} has no item {key}", code=Refusal.NOT_FOUND)
    if item.status != TodoItem.Status.PARKED:
        raise TodoRefused(f"{list_name} item {key} is {item.status}, not parked", code=Refusal.NOT_PARKED)
    if item.held:
        raise TodoRefused(
            f"{list_name} item {key} is being worked by {item.claimed_by}; try again later", code=Refusal.HELD
        )
    return ParkedItem(list_name=list_name, key=key, parked_for=item.parked_for)

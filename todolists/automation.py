"""The automation runner: claim due items, work them, record the outcome as events.

Claims are leases in the TodoItem row (`select_for_update(skip_locked=True)` on PostgreSQL,
the single-writer lock on SQLite), so two workers on any number of machines never take the same
item. A lease that outlives a crashed worker expires and the item is taken again; the list's work
function must re-check the stream before acting (a lagging list or a second worker then finds
the outcome already recorded), and side effects carry an idempotency key derived from the item.

Every failure of the work function is a failed attempt, recorded as an event with the error and
the time of the next try (exponential backoff). After `TODO_MAX_ATTEMPTS` the item is parked and
stays visible until an operator asks for a retry, which is an event too.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import os
import socket
import time
from collections.abc import Sequence

from django.conf import settings
from django.db import transaction
from django.db.models import DateTimeField, DurationField, ExpressionWrapper, Q, Value
from django.db.models.functions import Now
from django.utils import timezone

from eventstore.projections import (
    CatchUpResult,
    halted_correlations,
    projection_catch_up,
    projections_catch_up,
)
from eventstore.store import RecordedEvent, correlations_read, event_append
from todolists.events import TodoAttemptFailed, TodoItemParked, TodoRetryRequested
from todolists.lists import TodoList, registry
from todolists.models import TodoItem

logger = logging.getLogger(__name__)


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def todo_stream(*, list_name: str, key: str) -> str:
    return f"todo-{list_name}-{key}"


def backoff(*, attempt: int) -> datetime.timedelta:
    """5 s, 10 s, 20 s, ... (TODO_BACKOFF_SECONDS doubled per attempt), capped at one hour."""
    return datetime.timedelta(seconds=min(settings.TODO_BACKOFF_SECONDS * 2 ** (attempt - 1), 3600))


def _lease_end() -> ExpressionWrapper:
    # The database's clock, not each machine's: workers on several hosts compare the same time.
    lease = Value(datetime.timedelta(seconds=settings.TODO_LEASE_SECONDS), output_field=DurationField())
    return ExpressionWrapper(Now() + lease, output_field=DateTimeField())


def _claim(todo: TodoList, *, worker: str, limit: int, avoid: set[str] = frozenset()) -> list[TodoItem]:
    with transaction.atomic():
        candidates = (
            TodoItem.objects.filter(TodoItem.due(), list_name=todo.name)
            .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=Now()))
            .exclude(correlation_id__in=avoid)
            .select_for_update(skip_locked=True)
            .order_by("opened_position")[:limit]
        )
        ids = list(candidates.values_list("pk", flat=True))
        TodoItem.objects.filter(pk__in=ids).update(claimed_by=worker, claimed_until=_lease_end())
    return list(TodoItem.objects.filter(pk__in=ids).order_by("opened_position"))


def _still_mine(item: TodoItem, worker: str) -> bool:
    """Renew the lease just before acting; False if it ran out and another worker took the item."""
    return bool(
        TodoItem.objects.filter(list_name=item.list_name, key=item.key, claimed_by=worker, status=item.status)
        .filter(claimed_until__gte=Now())
        .update(claimed_until=_lease_end())
    )


def _release(items: list[TodoItem], worker: str) -> None:
    if items:
        TodoItem.objects.filter(
            list_name=items[0].list_name, key__in=[i.key for i in items], claimed_by=worker
        ).update(claimed_by="", claimed_until=None)


class NoOutcome(Exception):
    """The work function returned, yet the item is still open and no failure was recorded."""


def _record_failure(todo: TodoList, item: TodoItem, error: Exception) -> None:
    attempt = item.attempts + 1
    message = f"{type(error).__name__}: {error}"[:2000]
    retry_at = timezone.now() + backoff(attempt=attempt)
    event_append(
        stream_id=todo_stream(list_name=todo.name, key=item.key),
        events=[
            TodoAttemptFailed(list=todo.name, key=item.key, attempt=attempt, error=message, retry_at=retry_at)
        ],
        expected_version=None,
        correlation_id=item.correlation_id,
        actor="automation",
    )
    if attempt >= settings.TODO_MAX_ATTEMPTS:
        todo_item_park(
            item=item, reason=f"gave up after {attempt} attempts; last error: {message}", actor="automation"
        )


@dataclasses.dataclass
class WorkResult:
    list_name: str
    worked: int = 0
    failed: int = 0
    halted: str = ""


def todo_list_work(
    *,
    list_name: str,
    batch: int = 10,
    max_items: int = 500,
    deadline: float | None = None,
    worker: str | None = None,
) -> WorkResult:
    """Work the due items of one list: claim a few at a time, run the list's work function,
    record failures. Stops when nothing is due, after `max_items`, or at `deadline` (a
    time.monotonic() value, checked before each item; by default see `work_deadline`)."""
    todo = registry.get(list_name)
    worker = worker or worker_id()
    result = WorkResult(list_name)
    deadline = deadline or work_deadline()
    # Each batch ends with a catch-up (see _work_batch), so only the first needs one up front.
    caught_up = projection_catch_up(name=todo.projection_name)
    # Business cases another projection is halted on wait for the operator (projection_skip).
    avoid = halted_correlations()
    while not caught_up.error and result.worked < max_items and time.monotonic() < deadline:
        items = _claim(todo, worker=worker, limit=batch, avoid=avoid)
        if not items:
            break
        try:
            caught_up = _work_batch(todo, items, worker, result, deadline)
        finally:
            _release(items, worker)  # what the deadline left unworked is free again at once
    if caught_up.error:
        # The list cannot see outcomes or failed attempts: working it would repeat itself.
        logger.error("%s: projection halted, not working the list: %s", list_name, caught_up.error)
        result.halted = caught_up.error
    return result


def work_deadline() -> float:
    """Half of django-q2's task timeout from now, leaving room for the slowest single item
    (gateway timeout) and the final catch-up, so a task is never killed halfway."""
    return time.monotonic() + settings.Q_CLUSTER.get("timeout", 60) / 2


def _work_batch(
    todo: TodoList, items: list[TodoItem], worker: str, result: WorkResult, deadline: float
) -> CatchUpResult:
    succeeded = []
    for item in items:
        if time.monotonic() >= deadline:
            break
        if not _still_mine(item, worker):
            continue
        result.worked += 1
        try:
            todo.work(item)
        except Exception as exc:
            result.failed += 1
            logger.warning("%s: item %s failed: %s", todo.name, item.key, exc)
            _record_failure(todo, item, exc)
        else:
            succeeded.append(item)
    # Close what was just decided before the claims go, so no worker picks it up again.
    caught_up = projection_catch_up(name=todo.projection_name)
    if caught_up.error:
        return caught_up
    for item in _without_outcome(todo, succeeded):
        result.failed += 1
        _record_failure(todo, item, NoOutcome("the work finished without recording an outcome"))
    return caught_up


def _without_outcome(todo: TodoList, items: list[TodoItem]) -> list[TodoItem]:
    """Items still open on the list whose closing event is not in the log either. The log, not the
    list: a reader may be held back by a running transaction and not see a fresh outcome yet."""
    still_open = dict(
        TodoItem.objects.filter(
            list_name=todo.name, key__in=[i.key for i in items], status=TodoItem.Status.OPEN
        ).values_list("key", "attempts")
    )
    suspects = [i for i in items if still_open.get(i.key) == i.attempts]
    if not suspects:
        return []
    closings = correlations_read(correlation_ids=[i.correlation_id for i in suspects], types=todo.closed_by)
    return [
        item
        for item in suspects
        if not any(
            e.position > item.opened_position and str(getattr(e.event, todo.key_field)) == item.key
            for e in closings[item.correlation_id]
        )
    ]


def todo_lists_work(*, names: list[str] | None = None, rounds: int = 10) -> list[WorkResult]:
    """Catch up every projection and work the lists until nothing is due (an outcome may open
    an item on the next list), at most `rounds` passes."""
    results: list[WorkResult] = []
    deadline = work_deadline()  # one budget for the whole task, however many lists and rounds
    for _ in range(rounds):
        projections_catch_up()
        passed = [todo_list_work(list_name=n, deadline=deadline) for n in (names or registry.names())]
        results.extend(passed)
        if not any(r.worked for r in passed) or names or time.monotonic() >= deadline:
            break
    if any(r.worked for r in results):
        # The outcomes just recorded must reach the read models too, not wait for the next sweep.
        projections_catch_up()
    return results


def todo_item_park(*, item: TodoItem, reason: str, actor: str) -> None:
    event_append(
        stream_id=todo_stream(list_name=item.list_name, key=item.key),
        events=[TodoItemParked(list=item.list_name, key=item.key, reason=reason)],
        expected_version=None,
        correlation_id=item.correlation_id,
        actor=actor,
    )


def todo_item_retry(*, item: TodoItem, actor: str) -> None:
    """An operator's "retry now": recorded as an event, which reopens a parked or waiting item."""
    if item.status == TodoItem.Status.DONE:
        raise ValueError(f"{item.list_name} item {item.key} is done; there is nothing to retry.")
    event_append(
        stream_id=todo_stream(list_name=item.list_name, key=item.key),
        events=[TodoRetryRequested(list=item.list_name, key=item.key)],
        expected_version=None,
        correlation_id=item.correlation_id,
        actor=actor,
    )


def todo_lists_nudge(*, list_names: list[str] | None = None, event_types: set[str] | None = None) -> None:
    """After the current transaction commits, ask the cluster to work these lists now.

    Best effort: if the broker is down the obligation is still on the list and the minute
    schedule sweeps it, so a failed enqueue is logged, never raised.
    """
    names = sorted(set(list_names or []) | set(registry.opened_by(event_types or set())))
    if not names or not settings.TODO_NUDGE:
        return

    def enqueue() -> None:
        from django_q.tasks import async_task

        try:
            async_task("todolists.tasks.work_lists", names, task_name=f"nudge {','.join(names)}")
        except Exception:
            logger.warning("could not enqueue a nudge for %s; the schedule will sweep", names, exc_info=True)

    transaction.on_commit(enqueue)


def todo_lists_nudge_after_append(recorded: Sequence[RecordedEvent]) -> None:
    """The append hook: nudge the lists these events open, and the lists an operator's retry reopens."""
    retried = [e.event.list for e in recorded if e.type == TodoRetryRequested.event_type]
    todo_lists_nudge(list_names=retried, event_types={e.type for e in recorded})

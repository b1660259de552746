"""A list's history per minute and per hour, kept beside its items: the rollup the charts read.

Each list's projection (todolists/lists.py) hands every change of its rows to `rollup_write`,
which counts, at the event's own recorded_at, what the change did to the item: opened, closed,
parked, unparked, reopened, a failed attempt, a backoff begun or ended, and the wait before the
first attempt and the time to close as histogram buckets; per minute, per hour, and in all-time
totals (from which the dashboard reads how many items are done without counting them). The counts are added to TodoListRollup in one
statement per batch, in the batch's transaction, so the rollup is as far along the log as the
items, and `replay_projections` rebuilds it with them. Levels (open, parked, retrying at the end of
a bucket) are not stored: the charts fold them back from the present with these counts.

A backoff's end is counted in the bucket of its retry_at, which may lie ahead; an item that leaves
its backoff early (closed, parked, retried) takes that count back and ends it at the event.
"""

from __future__ import annotations

import collections
import datetime
from collections.abc import Sequence
from typing import Any

from django.db import connection
from django.db.models import Model

from eventstore.backends.base import model_field
from eventstore.projections import Batch, Change, Derived, Table
from todolists.events import TodoAttemptFailed
from todolists.models import TodoItem, TodoListRollup

OPENED, CLOSED, REOPENED, FAILED = "opened", "closed", "reopened", "failed"
PARKED_IN, PARKED_OUT = "parked_in", "parked_out"
BACKOFF_IN, BACKOFF_OUT = "backoff_in", "backoff_out"
WAIT, CLOSE = "wait", "close"
"""Latency measures are stored per histogram bucket: "wait:3" counts waits in bucket 3."""

EDGES = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 24 * 3600)
"""Upper bounds in seconds of the latency buckets; the last bucket (index len(EDGES)) is open."""

PERIODS = {
    TodoListRollup.Period.MINUTE: datetime.timedelta(minutes=1),
    TodoListRollup.Period.HOUR: datetime.timedelta(hours=1),
}
EPOCH = datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)
"""Where the buckets are counted from, and the `at` of the all-time totals."""


def floor(at: datetime.datetime, size: datetime.timedelta) -> datetime.datetime:
    return EPOCH + size * int((at - EPOCH) / size)


def last_hour_since(now: datetime.datetime) -> datetime.datetime:
    """The start of "the last hour" as the rollup counts it: the current minute and the 59
    before it (the list page's "done in the last hour" filter uses the same start)."""
    return floor(now, PERIODS[TodoListRollup.Period.MINUTE]) - datetime.timedelta(minutes=59)


def latency_bucket(seconds: float) -> int:
    return next((i for i, edge in enumerate(EDGES) if seconds <= edge), len(EDGES))


def _backoff_until(row: dict[str, Any] | None, at: datetime.datetime) -> datetime.datetime | None:
    """When the item's backoff ends, if it is waiting one out at `at`."""
    if row is None or row["status"] != TodoItem.Status.OPEN:
        return None
    until = row.get("next_attempt_at")
    return until if until is not None and until > at else None


def _counts(change: Change) -> list[tuple[str, datetime.datetime, int]]:
    """What one change of an item adds to the rollup: (measure, when, how many)."""
    before, after, envelope = change
    at = envelope.recorded_at
    was_open = before is not None and before["status"] != TodoItem.Status.DONE
    is_open = after["status"] != TodoItem.Status.DONE
    out: list[tuple[str, datetime.datetime, int]] = []
    if is_open and not was_open:
        out.append((OPENED, at, 1))
        if before is not None:  # a done item opened again: done now counts closed - reopened
            out.append((REOPENED, at, 1))
    if was_open and not is_open:
        waited = (at - after["opened_at"]).total_seconds()
        out += [(CLOSED, at, 1), (f"{CLOSE}:{latency_bucket(waited)}", at, 1)]
        if before is not None and before["attempts"] == 0:  # closed at the first attempt
            out.append((f"{WAIT}:{latency_bucket(waited)}", at, 1))
    was_parked = before is not None and before["status"] == TodoItem.Status.PARKED
    is_parked = after["status"] == TodoItem.Status.PARKED
    if is_parked != was_parked:
        out.append((PARKED_IN if is_parked else PARKED_OUT, at, 1))
    if isinstance(envelope.event, TodoAttemptFailed):
        out.append((FAILED, at, 1))
        if envelope.event.attempt == 1:
            out.append((f"{WAIT}:{latency_bucket((at - after['opened_at']).total_seconds())}", at, 1))
    ended, begun = _backoff_until(before, at), _backoff_until(after, at)
    if ended != begun:
        if ended is not None:  # left early: its end moves from retry_at to now
            out += [(BACKOFF_OUT, ended, -1), (BACKOFF_OUT, at, 1)]
        if begun is not None:
            out += [(BACKOFF_IN, at, 1), (BACKOFF_OUT, begun, 1)]
    return out


def rollup_derived(*, list_name: str) -> Derived:
    """The rollup as a derived table of a list's projection, scoped to the list's own rows."""

    def write(batch: Batch, changes: Sequence[Change]) -> None:
        rollup_write(model=batch.model(TodoListRollup), list_name=list_name, changes=changes)

    table = Table(
        model=TodoListRollup,
        key=("list_name", "period", "at", "measure"),
        scope={"list_name": list_name},
        operational=("id",),
    )
    return Derived(tables=(table,), write=write)


def rollup_write(*, model: type[Model], list_name: str, changes: Sequence[Change]) -> None:
    """Add the changes' counts to the rollup: one INSERT ... ON CONFLICT that adds to the buckets."""
    totals: collections.Counter[tuple[str, datetime.datetime, str]] = collections.Counter()
    for change in changes:
        for measure, at, n in _counts(change):
            for period, size in PERIODS.items():
                totals[(period, floor(at, size), measure)] += n
            totals[(TodoListRollup.Period.TOTAL, EPOCH, measure)] += n
    rows = [(key, n) for key, n in totals.items() if n]
    if not rows:
        return
    q = connection.ops.quote_name
    at_field = model_field(model, "at")
    params: list[Any] = []
    for (kind, at, measure), n in rows:
        params += [list_name, kind, at_field.get_db_prep_save(at, connection), measure, n]
    table = q(model._meta.db_table)
    values = ", ".join(["(%s, %s, %s, %s, %s)"] * len(rows))
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (list_name, period, at, measure, n) VALUES {values} "
            "ON CONFLICT (list_name, period, at, measure) DO UPDATE SET n = "
            f"{table}.n + excluded.n",
            params,
        )

"""Claims on TODO items: short leases on the database clock, renewed by a heartbeat while held.

A claim is operational state in the TodoItem row (the log does not hold it, and a replay keeps
it). `select_for_update(skip_locked=True)` lets two workers claim at the same moment without
waiting for each other or taking the same row; on SQLite the single write lock does the same.
A lease lasts `TODO_LEASE_SECONDS` (10 s by default) and a heartbeat renews it every third of
that while the worker holds the items, so a dead worker's items are free again within seconds.
Nothing relies on the lease alone: the work re-checks the stream before acting, and side effects
carry an idempotency key, so a worker that was only slow and a worker that took over never
decide an item twice.
"""

from __future__ import annotations

import datetime
import logging
import os
import socket
import threading
from collections.abc import Collection, Sequence
from typing import Any

from django.db import connection, connections, transaction
from django.db.models import DateTimeField, DurationField, ExpressionWrapper, Q, QuerySet, Value
from django.db.models.expressions import CombinedExpression
from django.db.models.functions import Now
from django.db.models.sql import UpdateQuery

from eventstore.backends.base import column as field_column
from todolists.conf import conf
from todolists.models import TodoItem

logger = logging.getLogger(__name__)


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _lease_end() -> ExpressionWrapper[CombinedExpression]:
    # The database's clock, not each machine's: workers on several hosts compare the same time.
    lease = Value(datetime.timedelta(seconds=conf.lease_seconds), output_field=DurationField())
    return ExpressionWrapper(Now() + lease, output_field=DateTimeField())


def _free() -> Q:
    """Nobody holds the item, or the holder's lease ran out."""
    return Q(claimed_until__isnull=True) | Q(claimed_until__lt=Now())


def todo_items_claim(
    *,
    list_name: str,
    worker: str,
    limit: int,
    avoid: Collection[str] = (),
    task_started_at: datetime.datetime | None = None,
) -> list[TodoItem]:
    """Claim up to `limit` due items of a list, oldest first, for one lease; none of the business
    cases (correlation ids) in `avoid`. The claim notes when it was made and when its task started
    (the stage table's timestamps), in the same statement."""
    candidates = (
        TodoItem.objects.filter(TodoItem.due(), _free(), list_name=list_name)
        .exclude(correlation_id__in=list(avoid))
        .select_for_update(skip_locked=True)
        .order_by("opened_position")[:limit]
    )
    # One statement: UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED) RETURNING the rows.
    update = TodoItem.objects.filter(pk__in=candidates.values("pk")).query.chain(UpdateQuery)
    if not isinstance(update, UpdateQuery):  # the stubs type chain() as returning a plain Query
        raise TypeError(f"expected an UpdateQuery, got {type(update).__name__}")
    update.add_update_values(
        {
            "claimed_by": worker,
            "claimed_until": _lease_end(),
            "claimed_at": Now(),
            "task_started_at": task_started_at,
        }
    )
    fields = TodoItem._meta.concrete_fields
    with transaction.atomic(), connection.cursor() as cursor:
        sql, params = update.get_compiler(connection.alias).as_sql()
        cursor.execute(
            f"{sql} RETURNING {', '.join(connection.ops.quote_name(field_column(f)) for f in fields)}", params
        )
        rows = cursor.fetchall()
    columns = [f.get_col(TodoItem._meta.db_table) for f in fields]
    converters = [(c, connection.ops.get_db_converters(c) + c.get_db_converters(connection)) for c in columns]
    items = [
        TodoItem.from_db(connection.alias, [f.attname for f in fields], _converted(row, converters))
        for row in rows
    ]
    return sorted(items, key=lambda i: i.opened_position)


def _converted(row: tuple[Any, ...], converters: list[tuple[Any, list[Any]]]) -> list[Any]:
    """The row's values as the ORM would load them (e.g. SQLite's text timestamps as datetimes)."""
    values = []
    for value, (column, fns) in zip(row, converters, strict=True):
        for fn in fns:
            value = fn(value, column, connection)
        values.append(value)
    return values


def _held(*, list_name: str, keys: Sequence[str], worker: str) -> QuerySet[TodoItem]:
    return TodoItem.objects.filter(
        list_name=list_name, key__in=list(keys), claimed_by=worker, status=TodoItem.Status.OPEN
    ).filter(claimed_until__gte=Now())


def todo_items_renew(*, list_name: str, keys: Sequence[str], worker: str) -> int:
    """Extend this worker's live leases on these items by one lease, in one statement; returns
    how many it still held. A lease that ran out is not revived: another worker may have it."""
    return _held(list_name=list_name, keys=keys, worker=worker).update(claimed_until=_lease_end())


def todo_items_still_mine(*, items: Sequence[TodoItem], worker: str) -> list[TodoItem]:
    """Renew the batch's leases just before acting and return the items this worker still holds
    (one statement; a second only when some lease was lost meanwhile)."""
    if not items:
        return []
    list_name, keys = items[0].list_name, [i.key for i in items]
    renewed = todo_items_renew(list_name=list_name, keys=keys, worker=worker)
    if renewed == len(items):
        return list(items)
    mine = set(_held(list_name=list_name, keys=keys, worker=worker).values_list("key", flat=True))
    return [i for i in items if i.key in mine]


def todo_items_release(*, items: Sequence[TodoItem], worker: str) -> None:
    """Give the items back at once (what is still open is due again for any worker)."""
    if items:
        TodoItem.objects.filter(
            list_name=items[0].list_name, key__in=[i.key for i in items], claimed_by=worker
        ).update(claimed_by="", claimed_until=None)


def todo_leases_expired() -> QuerySet[TodoItem]:
    """Open items whose holder's lease ran out without a release: the holder died or hangs.
    `claimed_by` says who held them; the next claim of their list takes them over."""
    return TodoItem.objects.filter(TodoItem.lease_expired())


def todo_leases_held_by_others(*, list_names: Sequence[str], worker: str) -> bool:
    """Does another worker hold (or did it hold, until its lease ran out) due items of these lists?
    Items waiting out a backoff are not waited for: they are claimed like any other once due."""
    return (
        TodoItem.objects.filter(TodoItem.due(), list_name__in=list(list_names))
        .exclude(claimed_by__in=["", worker])
        .exists()
    )


def todo_items_claimable(*, list_names: Sequence[str]) -> bool:
    """Is any item of these lists due and free (never claimed, released, or its lease ran out)?"""
    return TodoItem.objects.filter(TodoItem.due(), _free(), list_name__in=list(list_names)).exists()


class LeaseHeartbeat:
    """Renews the leases of the items in hand every third of a lease, from a daemon thread with
    its own database connection, until the `with` block ends (however it ends).

    Inside an outer transaction (a test's, or a caller's atomic block) another connection cannot
    see the claim this one has not committed, so no thread is started: the batch's renewal just
    before the work is the only one, as before heartbeats.
    """

    def __init__(self, *, items: Sequence[TodoItem], worker: str) -> None:
        self.list_name = items[0].list_name if items else ""
        self.keys = [i.key for i in items]
        self.worker = worker
        self.interval = conf.lease_seconds / 3
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> LeaseHeartbeat:
        if self.keys and not connection.in_atomic_block:
            self._thread = threading.Thread(
                target=self._run, name=f"lease-heartbeat-{self.list_name}", daemon=True
            )
            self._thread.start()
        return self

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.interval):
                try:
                    todo_items_renew(list_name=self.list_name, keys=self.keys, worker=self.worker)
                except Exception:
                    # The lease may run out: the re-check and the idempotency key keep the work safe.
                    logger.warning("lease heartbeat for %s failed", self.list_name, exc_info=True)
        finally:
            connections.close_all()  # this thread's own connection

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval + 5)

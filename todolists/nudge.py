"""The nudge: after a command commits, ask the cluster to work the lists it touched, now.

Latency comes from the nudge, safety from the schedule: if the broker is down or loses the task,
the obligation is still on the list and the minute sweep works it.

A nudge carries its trigger, the transaction id of the appends that caused it. A reader sees
only below the oldest transaction still running, so the task waits until the read bound passes
its trigger (or hands the nudge on to a fresh task): woken too early it would see nothing,
report "0 worked" and drop the wake-up, since appends meanwhile were coalesced into it.
"""

from __future__ import annotations

import datetime
import logging
import time
from collections.abc import Callable, Sequence

from django.apps import apps
from django.db import connection, transaction
from django.utils import timezone

from eventstore.store import RecordedEvent, log_visible_below
from todolists.apps import TodoListsConfig
from todolists.conf import conf
from todolists.events import TodoRetryRequested
from todolists.lists import registry
from todolists.models import PendingNudge

logger = logging.getLogger(__name__)

# How often a held-back nudge task looks at the read bound again, and how long it waits before it
# hands the nudge on to a fresh task (so a long transaction does not hold a worker slot).
VISIBLE_POLL_SECONDS = 0.05
VISIBLE_WAIT_SECONDS = 10.0


def todo_lists_nudge(
    *, list_names: list[str] | None = None, event_types: set[str] | None = None, trigger: int = 0
) -> None:
    """After the current transaction commits, ask the cluster to work these lists now.

    `trigger` is the transaction id of the appended events (0: none), which the task waits to
    see. Best effort: if the broker is down the obligation is still on the list and the minute
    schedule sweeps it, so a failed enqueue is logged, never raised.
    """
    names = sorted(set(list_names or []) | set(registry.opened_by(event_types or set())))
    if not names or not conf.nudge:
        return

    def enqueue() -> None:
        try:
            due = _not_pending(names, trigger)
            if due:
                todo_task_enqueue()("todolists.tasks.work_lists", due, task_name=f"nudge {','.join(due)}")
        except Exception as exc:  # one line, not a traceback: the order is placed all the same
            logger.warning(
                "could not enqueue a nudge for %s (%s: %s); the schedule will sweep",
                ", ".join(names),
                type(exc).__name__,
                exc,
            )

    transaction.on_commit(enqueue)


def todo_task_enqueue() -> Callable[..., object]:
    """How a task reaches the cluster: the function installed on the app config (TodoListsConfig.
    enqueue: a test's broker), else django-q2's `async_task`."""
    config = apps.get_app_config("todolists")
    if isinstance(config, TodoListsConfig) and config.enqueue is not None:
        return config.enqueue
    from django_q.tasks import async_task

    enqueue: Callable[..., object] = async_task  # django-q2 ships no types
    return enqueue


_PENDING = PendingNudge._meta.db_table
# One statement per list: create the pending row or raise its trigger to this one, and say whether
# a task must be queued (no row yet, or only a stale one, whose task a broker may have lost).
_UPSERT = f"""
    INSERT INTO {_PENDING} (list_name, queued_at, trigger_tx_id) VALUES (%s, %s, %s)
    ON CONFLICT (list_name) DO UPDATE SET
        trigger_tx_id = CASE WHEN excluded.trigger_tx_id > {_PENDING}.trigger_tx_id
                             THEN excluded.trigger_tx_id ELSE {_PENDING}.trigger_tx_id END,
        queued_at = CASE WHEN {_PENDING}.queued_at < %s THEN excluded.queued_at ELSE {_PENDING}.queued_at END
    RETURNING queued_at = %s
"""


def _not_pending(names: list[str], trigger: int) -> list[str]:
    """Record the trigger on these lists' pending nudge; return the lists that had none queued."""
    now = timezone.now()
    stale = now - datetime.timedelta(seconds=conf.nudge_coalesce_seconds)
    adapt = connection.ops.adapt_datetimefield_value
    due = []
    with connection.cursor() as cursor:
        for name in names:
            cursor.execute(_UPSERT, [name, adapt(now), trigger, adapt(stale), adapt(now)])
            if cursor.fetchone()[0]:
                due.append(name)
    return due


def todo_lists_nudge_started(*, list_names: list[str] | None) -> int:
    """A nudge task starts (or the sweep): what is appended from now on may nudge again. Returns
    the newest trigger of the nudges it takes over (0: none)."""
    where, params = "", []
    if list_names is not None:
        where, params = f"WHERE list_name IN ({', '.join(['%s'] * len(list_names))})", list(list_names)
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {_PENDING} {where} RETURNING trigger_tx_id", params)
        return max((row[0] for row in cursor.fetchall()), default=0)


def todo_log_wait_visible(*, trigger: int, seconds: float) -> bool:
    """Wait until readers see transaction `trigger` (the read bound passed it), at most `seconds`;
    False at the deadline."""
    deadline = time.monotonic() + seconds
    while True:
        bound = log_visible_below()
        if bound is None or bound > trigger:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(VISIBLE_POLL_SECONDS)  # polling the bound, with the deadline above


def todo_lists_nudge_after_append(recorded: Sequence[RecordedEvent]) -> None:
    """The append hook (registered in apps.py): nudge the lists these events open, and the list an
    operator's retry reopens. Commands never nudge by hand, so none can forget to."""
    events = (e.event for e in recorded if e.type == TodoRetryRequested.event_type)
    retried = [event.list for event in events if isinstance(event, TodoRetryRequested)]
    trigger = max((e.tx_id for e in recorded), default=0)
    todo_lists_nudge(list_names=retried, event_types={e.type for e in recorded}, trigger=trigger)

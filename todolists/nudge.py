"""The nudge: after a command commits, ask the cluster to work the lists it touched, now.

Latency comes from the nudge, safety from the schedule: if the broker is down or loses the task,
the obligation is still on the list and the minute sweep works it.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable, Sequence

from django.apps import apps
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from eventstore.store import RecordedEvent
from todolists.conf import conf
from todolists.events import TodoRetryRequested
from todolists.lists import registry
from todolists.models import PendingNudge

logger = logging.getLogger(__name__)


def todo_lists_nudge(*, list_names: list[str] | None = None, event_types: set[str] | None = None) -> None:
    """After the current transaction commits, ask the cluster to work these lists now.

    Best effort: if the broker is down the obligation is still on the list and the minute
    schedule sweeps it, so a failed enqueue is logged, never raised.
    """
    names = sorted(set(list_names or []) | set(registry.opened_by(event_types or set())))
    if not names or not conf.nudge:
        return

    def enqueue() -> None:
        try:
            due = _not_pending(names)
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
    installed = apps.get_app_config("todolists").enqueue
    if installed is not None:
        return installed
    from django_q.tasks import async_task

    return async_task


def _not_pending(names: list[str]) -> list[str]:
    """Mark these lists' nudge as queued and return those that had none queued (or only a stale
    one, whose task a broker may have lost). Per list: an UPDATE that takes a stale row over,
    else a get-or-create (a fresh row found means its task is still to start)."""
    now = timezone.now()
    stale = now - datetime.timedelta(seconds=conf.nudge_coalesce_seconds)
    due = []
    for name in names:
        free = Q(list_name=name) & Q(queued_at__lt=stale)
        if PendingNudge.objects.filter(free).update(queued_at=now):
            due.append(name)
        else:
            _, created = PendingNudge.objects.get_or_create(list_name=name, defaults={"queued_at": now})
            if created:
                due.append(name)
    return due


def todo_lists_nudge_started(*, list_names: list[str] | None) -> None:
    """A nudge task starts (or the sweep): what is appended from now on may nudge again."""
    pending = (
        PendingNudge.objects.all()
        if list_names is None
        else PendingNudge.objects.filter(list_name__in=list_names)
    )
    pending.delete()


def todo_lists_nudge_after_append(recorded: Sequence[RecordedEvent]) -> None:
    """The append hook (registered in apps.py): nudge the lists these events open, and the list an
    operator's retry reopens. Commands never nudge by hand, so none can forget to."""
    retried = [e.event.list for e in recorded if e.type == TodoRetryRequested.event_type]
    todo_lists_nudge(list_names=retried, event_types={e.type for e in recorded})

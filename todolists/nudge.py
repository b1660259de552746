"""The nudge: after a command commits, ask the cluster to work the lists it touched, now.

Latency comes from the nudge, safety from the schedule: if the broker is down or loses the task,
the obligation is still on the list and the minute sweep works it.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Sequence

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from eventstore.store import RecordedEvent
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
    if not names or not settings.TODO_NUDGE:
        return

    def enqueue() -> None:
        from django_q.tasks import async_task

        try:
            due = _not_pending(names)
            if due:
                async_task("todolists.tasks.work_lists", due, task_name=f"nudge {','.join(due)}")
        except Exception as exc:  # one line, not a traceback: the order is placed all the same
            logger.warning(
                "could not enqueue a nudge for %s (%s: %s); the schedule will sweep",
                ", ".join(names),
                type(exc).__name__,
                exc,
            )

    transaction.on_commit(enqueue)


def _not_pending(names: list[str]) -> list[str]:
    """Mark these lists' nudge as queued and return those that had none queued (or only a stale
    one, whose task a broker may have lost): one UPDATE per list in the common case."""
    now = timezone.now()
    stale = now - datetime.timedelta(seconds=settings.TODO_NUDGE_COALESCE_SECONDS)
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

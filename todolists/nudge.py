"""The nudge: after a command commits, ask the cluster to work the lists it touched, now.

Latency comes from the nudge, safety from the schedule: if the broker is down or loses the task,
the obligation is still on the list and the minute sweep works it.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction

from todolists.lists import registry

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
            async_task("todolists.tasks.work_lists", names, task_name=f"nudge {','.join(names)}")
        except Exception:
            logger.warning("could not enqueue a nudge for %s; the schedule will sweep", names, exc_info=True)

    transaction.on_commit(enqueue)

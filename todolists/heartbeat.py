"""Every qcluster worker process says it is alive: one WorkerHeartbeat row per worker, renewed every
TODO_HEARTBEAT_SECONDS by a daemon thread with its own connection.

Started from django-q2's `post_spawn` signal, which each worker process sends once it is ready
for tasks (django_q/worker.py), so the row's pid is the one its leases carry (host:pid, see
leases.worker_id) and a worker that is reincarnated after a crash beats under its new pid. The
beat is on the database's clock, like the leases. A worker killed with kill -9 simply stops
beating; the verdict (todolists/ui/verdict.py) calls a worker dead after TODO_WORKER_DEAD_AFTER_SECONDS.
Rows are operational state, never in the log; beats older than a day are pruned.
"""

from __future__ import annotations

import datetime
import logging
import os
import socket
import threading

from django.conf import settings
from django.db import connections
from django.db.models import DateTimeField, ExpressionWrapper, Q, Value
from django.db.models.expressions import CombinedExpression
from django.db.models.functions import Now
from django.utils import timezone

from todolists.conf import conf
from todolists.leases import worker_id
from todolists.models import WorkerHeartbeat

logger = logging.getLogger(__name__)

PRUNE_AFTER = datetime.timedelta(days=1)


def worker_heartbeat_beat(*, worker: str, started_at: datetime.datetime) -> None:
    """Record that this worker is alive now (one upsert), and forget workers silent for a day."""
    WorkerHeartbeat.objects.update_or_create(
        worker=worker,
        defaults={
            "cluster": settings.Q_CLUSTER.get("name", ""),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started_at": started_at,
            "last_beat_at": Now(),
        },
    )
    WorkerHeartbeat.objects.filter(last_beat_at__lt=_ago(PRUNE_AFTER)).delete()


def _ago(delta: datetime.timedelta) -> ExpressionWrapper[CombinedExpression]:
    return ExpressionWrapper(Now() - Value(delta), output_field=DateTimeField())


def alive_q() -> Q:
    """A worker that beat within TODO_WORKER_DEAD_AFTER_SECONDS, by the database's clock."""
    return Q(last_beat_at__gte=_ago(datetime.timedelta(seconds=conf.worker_dead_after_seconds)))


def _beat_forever(worker: str, started_at: datetime.datetime) -> None:
    stop = threading.Event()
    while True:
        try:
            worker_heartbeat_beat(worker=worker, started_at=started_at)
        except Exception:
            # A database that is briefly away: the verdict sees a silent worker, which is the truth.
            logger.warning("worker heartbeat of %s failed", worker, exc_info=True)
            connections.close_all()  # this thread's own connection; reopened by the next beat
        stop.wait(conf.heartbeat_seconds)


def worker_heartbeat_start(**kwargs: object) -> None:
    """django-q2's post_spawn receiver: start beating for this worker process."""
    threading.Thread(
        target=_beat_forever, args=(worker_id(), timezone.now()), name="worker-heartbeat", daemon=True
    ).start()

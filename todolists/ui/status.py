"""What each TODO list holds right now: the numbers the verdict (todolists/ui/verdict.py) judges.

Every function here runs a fixed number of queries whatever the size of the lists or the log:
one grouped aggregate over TodoItem, the projections' checkpoints with the log head
(max(position), never a COUNT over the log), and a few small queries on django-q2's tables.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
from collections.abc import Mapping
from typing import Any

from django.db.models import Count, F, Max, Min, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from eventstore.models import ParkedEvent
from eventstore.projections import ProjectionStatus, projection_status
from todolists import rollup
from todolists.conf import conf
from todolists.events import TodoItemParked
from todolists.leases import todo_leases_expired
from todolists.lists import TodoList, registry
from todolists.models import TodoItem, TodoListRollup

logger = logging.getLogger(__name__)

SWEEP_FUNC = "todolists.tasks.sweep"
EXPIRED_LEASES_SHOWN = 20


def stuck_after(todo: TodoList) -> datetime.timedelta:
    return todo.stuck_after or datetime.timedelta(seconds=conf.stuck_after_seconds)


@dataclasses.dataclass(frozen=True)
class ListStatus:
    name: str
    title: str
    open: int
    """Not done: due, waiting out a backoff, or parked."""
    due: int
    retrying: int
    """Failed at least once and waiting out the backoff."""
    parked: int
    done: int
    done_last_hour: int
    expired_leases: int
    oldest_open_at: datetime.datetime | None
    oldest_open_age_seconds: float | None
    oldest_due_age_seconds: float | None
    """How long the longest-waiting due item has been due: what "stuck" is measured on."""
    stuck_after_seconds: float
    lag: int
    """Events in the log the list has not applied yet (its numbers may be behind by that much)."""
    halted: bool
    error: str
    closed_by: tuple[str, ...]
    oldest_parked_at: datetime.datetime | None = None
    level: str = "ok"
    """The verdict's level for the list (todolists/ui/verdict.py fills it in)."""
    paused: bool = False

    @property
    def oldest_due_at(self) -> datetime.datetime | None:
        return (
            self.as_of - datetime.timedelta(seconds=self.oldest_due_age_seconds)
            if self.oldest_due_age_seconds is not None
            else None
        )

    as_of: datetime.datetime = dataclasses.field(default_factory=timezone.now)

    @property
    def stuck(self) -> bool:
        return (
            self.oldest_due_age_seconds is not None and self.oldest_due_age_seconds > self.stuck_after_seconds
        )

    @property
    def state(self) -> str:
        return "paused" if self.paused else "halted" if self.halted else "stuck" if self.stuck else "ok"

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for moment in ("oldest_open_at", "oldest_parked_at", "as_of"):
            d[moment] = d[moment].isoformat() if d[moment] else None
        d["closed_by"] = list(self.closed_by)
        d["stuck"] = self.stuck
        d["state"] = self.state
        return d


def _age(now: datetime.datetime, since: datetime.datetime | None) -> float | None:
    return round((now - since).total_seconds(), 1) if since else None


def _done(now: datetime.datetime) -> dict[str, dict[str, int]]:
    """Per list, its items done and those done in the last hour, from the rollup's all-time
    totals and last minutes (todolists/rollup.py): one query on a few rows, where counting the
    done items (most of the table) would read them all."""
    total, minute = TodoListRollup.Period.TOTAL, TodoListRollup.Period.MINUTE
    rows = TodoListRollup.objects.filter(
        Q(period=total, measure__in=[rollup.CLOSED, rollup.REOPENED])
        | Q(period=minute, measure=rollup.CLOSED, at__gte=rollup.last_hour_since(now))
    )
    out: dict[str, dict[str, int]] = {}
    for name, period, measure, n in rows.order_by().values_list("list_name", "period", "measure", "n"):
        counts = out.setdefault(name, {"done": 0, "done_last_hour": 0})
        if period == minute:
            counts["done_last_hour"] += n
        else:
            counts["done"] += n if measure == rollup.CLOSED else -n
    return out


def _counts(now: datetime.datetime) -> Mapping[str, Mapping[str, Any]]:
    """Per list name, its items counted by state: one grouped query over the items not done (on
    their own partial index, todolists/models.py: never the done ones, most of the table), and
    the done ones from the rollup."""
    open_ = Q(status=TodoItem.Status.OPEN)
    waits_on_case = Q(correlation_id__in=ParkedEvent.objects.values("correlation_id"))
    rows: dict[str, dict[str, Any]] = {
        r["list_name"]: dict(r)
        for r in TodoItem.objects.exclude(status=TodoItem.Status.DONE)
        .order_by()
        .values("list_name")
        .annotate(
            open=Count("pk"),
            due_now=Count("pk", filter=TodoItem.due()),  # not "due": TodoItem.due() is a method
            retrying=Count("pk", filter=open_ & ~TodoItem.due()),
            parked=Count("pk", filter=Q(status=TodoItem.Status.PARKED)),
            expired_leases=Count("pk", filter=TodoItem.lease_expired()),
            oldest=Min("opened_at"),
            # An item of a parked business case waits for the operator, not a worker: not "stuck".
            oldest_due=Min(Coalesce("next_attempt_at", "opened_at"), filter=TodoItem.due() & ~waits_on_case),
            oldest_parked=Min("parked_at", filter=Q(status=TodoItem.Status.PARKED)),
        )
    }
    for name, done in _done(now).items():
        rows.setdefault(name, {}).update(done)
    return rows


def todo_lists_status(*, projections: list[ProjectionStatus] | None = None) -> list[ListStatus]:
    """One row per registered list, also when it has no items (one query, plus the projections')."""
    now = timezone.now()
    rows = _counts(now)
    by_projection = {p.name: p for p in (projections if projections is not None else projection_status())}
    result = []
    for todo in registry.all():
        r: Mapping[str, Any] = rows.get(todo.name, {})
        p = by_projection.get(todo.projection_name)
        result.append(
            ListStatus(
                name=todo.name,
                title=todo.title,
                open=r.get("open", 0),
                due=r.get("due_now", 0),
                retrying=r.get("retrying", 0),
                parked=r.get("parked", 0),
                done=r.get("done", 0),
                done_last_hour=r.get("done_last_hour", 0),
                expired_leases=r.get("expired_leases", 0),
                oldest_open_at=r.get("oldest"),
                oldest_open_age_seconds=_age(now, r.get("oldest")),
                oldest_due_age_seconds=_age(now, r.get("oldest_due")),
                stuck_after_seconds=stuck_after(todo).total_seconds(),
                lag=p.lag if p else 0,
                halted=bool(p and p.halted),
                error=(
                    f"at #{p.error_position} ({p.error_type}): {p.error_message}" if p and p.halted else ""
                ),
                closed_by=todo.closed_by,
                oldest_parked_at=r.get("oldest_parked"),
                as_of=now,
            )
        )
    return result


def expired_leases(*, limit: int = EXPIRED_LEASES_SHOWN) -> list[TodoItem]:
    """Items whose lease ran out while still claimed, newest expiry first, with who held them."""
    return list(
        todo_leases_expired()
        .only("pk", "list_name", "key", "status", "claimed_by", "claimed_until")
        .order_by(F("claimed_until").desc())[:limit]
    )


@dataclasses.dataclass(frozen=True)
class ClusterStatus:
    last_sweep_at: datetime.datetime | None
    """When the minute sweep schedule last finished successfully (django-q2 keeps `save_limit` results)."""
    queued: int | None
    """Tasks waiting in the broker; None when the broker could not be asked."""
    failed_last_hour: int


def cluster_status() -> ClusterStatus:
    from django_q.brokers import get_broker
    from django_q.models import Task

    since = timezone.now() - datetime.timedelta(hours=1)
    tasks = Task.objects.order_by().aggregate(
        last_sweep=Max("stopped", filter=Q(func=SWEEP_FUNC, success=True)),
        failed=Count("pk", filter=Q(success=False, stopped__gte=since)),
    )
    try:
        queued = get_broker().queue_size()
    except Exception:  # a broker that is down must not take the dashboard with it
        logger.warning("could not ask the broker for its queue size", exc_info=True)
        queued = None
    return ClusterStatus(last_sweep_at=tasks["last_sweep"], queued=queued, failed_last_hour=tasks["failed"])


def todo_items_parked_since(*, position: int) -> dict[str, int]:
    """Items parked per list by events after `position` (the log head before a run)."""
    from eventstore.models import Event

    counts: dict[str, int] = {}
    for data in Event.objects.filter(position__gt=position, type=TodoItemParked.event_type).values_list(
        "data", flat=True
    ):
        counts[data["list"]] = counts.get(data["list"], 0) + 1
    return counts

"""What each TODO list holds right now: the numbers behind `todo_status` and the admin."""

from __future__ import annotations

import dataclasses
import datetime

from django.db.models import Count, Min, Q
from django.utils import timezone

from eventstore.projections import projection_status
from todolists.lists import registry
from todolists.models import TodoItem


@dataclasses.dataclass(frozen=True)
class ListStatus:
    name: str
    title: str
    open: int
    due: int
    retrying: int
    parked: int
    done: int
    oldest_open_at: datetime.datetime | None
    oldest_open_age_seconds: float | None
    lag: int
    """Events in the log the list has not applied yet (its numbers may be behind by that much)."""

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["oldest_open_at"] = self.oldest_open_at.isoformat() if self.oldest_open_at else None
        return d


def todo_lists_status() -> list[ListStatus]:
    now = timezone.now()
    open_ = Q(status=TodoItem.Status.OPEN)
    rows = {
        r["list_name"]: r
        for r in TodoItem.objects.values("list_name").annotate(
            open=Count("pk", filter=open_ | Q(status=TodoItem.Status.PARKED)),
            due=Count("pk", filter=TodoItem.due()),
            retrying=Count("pk", filter=open_ & ~TodoItem.due()),
            parked=Count("pk", filter=Q(status=TodoItem.Status.PARKED)),
            done=Count("pk", filter=Q(status=TodoItem.Status.DONE)),
            oldest=Min("opened_at", filter=~Q(status=TodoItem.Status.DONE)),
        )
    }
    lags = {s.name: s.lag for s in projection_status()}
    result = []
    for todo in registry.all():
        r = rows.get(todo.name, {})
        oldest = r.get("oldest")
        result.append(
            ListStatus(
                name=todo.name,
                title=todo.title,
                open=r.get("open", 0),
                due=r.get("due", 0),
                retrying=r.get("retrying", 0),
                parked=r.get("parked", 0),
                done=r.get("done", 0),
                oldest_open_at=oldest,
                oldest_open_age_seconds=round((now - oldest).total_seconds(), 1) if oldest else None,
                lag=lags.get(todo.projection_name, 0),
            )
        )
    return result

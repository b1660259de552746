"""The lists over time, from the times the log recorded: backlog, throughput, failure rate and
latency for the last hour (by minute) or the last day (by hour).

An item's opened_at and closed_at are its opening and closing events' recorded_at (the list is a
projection of the log) and failed attempts are TodoAttemptFailed events, so every number here is
read off the log's own history; nothing is sampled or kept on the side. Five queries whatever the
size of the log: opened per bucket, closed per bucket, failed attempts in the window, and the two
latencies' percentiles (computed by PostgreSQL; on SQLite, a development database, in Python).

Backlog at the end of a bucket is folded back from now: open(t) = open now + closed after t -
opened after t. Wait before the first attempt is measured to the first attempt's outcome: the
first failed attempt's record, or the close for an item that never failed.
"""

from __future__ import annotations

import dataclasses
import datetime
import statistics
from collections.abc import Sequence
from typing import Any

from django.db import connection, models
from django.db.models import Count, F, Func, QuerySet
from django.db.models.functions import TruncHour, TruncMinute
from django.db.models.functions.datetime import TruncBase
from django.utils import timezone

from eventstore.backends import backend
from eventstore.models import Event
from todolists.events import TodoAttemptFailed
from todolists.models import TodoItem
from todolists.ui.status import ListStatus

WINDOWS = {
    "hour": (datetime.timedelta(minutes=1), 60, TruncMinute),
    "day": (datetime.timedelta(hours=1), 24, TruncHour),
}
CHART_W, CHART_H, PAD = 300, 84, 4


@dataclasses.dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float]
    css: str

    @property
    def last(self) -> float:
        return self.values[-1] if self.values else 0

    @property
    def peak(self) -> float:
        return max(self.values, default=0)


@dataclasses.dataclass(frozen=True)
class Chart:
    id: str
    title: str
    unit: str
    series: list[Series]
    width: int = CHART_W
    height: int = CHART_H

    @property
    def top(self) -> float:
        return max([s.peak for s in self.series] + [1])

    @property
    def lines(self) -> list[tuple[Series, str]]:
        """Each series with its SVG polyline points, scaled into the chart box."""
        out = []
        for s in self.series:
            n = max(len(s.values) - 1, 1)
            pts = " ".join(
                f"{PAD + i * (self.width - 2 * PAD) / n:.1f},"
                f"{self.height - PAD - v / self.top * (self.height - 2 * PAD):.1f}"
                for i, v in enumerate(s.values)
            )
            out.append((s, pts))
        return out


@dataclasses.dataclass(frozen=True)
class Latency:
    wait_p50: float | None
    wait_p95: float | None
    close_p50: float | None
    close_p95: float | None


@dataclasses.dataclass(frozen=True)
class ListCharts:
    name: str
    title: str
    window: str
    charts: list[Chart]
    latency: Latency
    due: int
    parked: int


def _bucket(at: datetime.datetime, start: datetime.datetime, size: datetime.timedelta) -> int:
    return int((at - start) / size)


def _per_bucket(
    qs: QuerySet[TodoItem],
    field: str,
    trunc: type[TruncBase],
    since: datetime.datetime,
    start: datetime.datetime,
    size: datetime.timedelta,
    n: int,
) -> dict[str, list[int]]:
    rows = (
        qs.filter(**{f"{field}__gte": since})
        .order_by()
        .annotate(b=trunc(field))
        .values("list_name", "b")
        .annotate(n=Count("pk"))
    )
    out: dict[str, list[int]] = {}
    for r in rows:
        i = _bucket(r["b"], start, size)
        if 0 <= i < n:
            out.setdefault(r["list_name"], [0] * n)[i] += r["n"]
    return out


class _Seconds(Func):
    template = "EXTRACT(EPOCH FROM (%(expressions)s))"
    output_field = models.FloatField()


class _P50P95(models.Aggregate):
    """PostgreSQL's percentile_cont for the median and the 95th percentile in one pass."""

    function = "percentile_cont"
    template = "%(function)s(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = models.Field()


def _p50_p95(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    if len(values) == 1:
        return values[0], values[0]
    q = statistics.quantiles(values, n=100, method="inclusive")
    return statistics.median(values), q[94]


def _close_percentiles(since: datetime.datetime) -> dict[str, tuple[float | None, float | None]]:
    closed = TodoItem.objects.filter(status=TodoItem.Status.DONE, closed_at__gte=since).order_by()
    if backend().percentiles:
        rows = closed.values("list_name").annotate(p=_P50P95(_Seconds(F("closed_at") - F("opened_at"))))
        return {r["list_name"]: tuple(r["p"]) for r in rows}
    by_list: dict[str, list[float]] = {}
    for name, opened_at, closed_at in closed.values_list("list_name", "opened_at", "closed_at"):
        if closed_at is not None:  # always set on a done item (filtered above)
            by_list.setdefault(name, []).append((closed_at - opened_at).total_seconds())
    return {name: _p50_p95(v) for name, v in by_list.items()}


def list_charts(
    *, window: str, lists: list[ListStatus], now: datetime.datetime | None = None
) -> list[ListCharts]:
    """Charts for each list over `window` ("hour" or "day"), given the lists' present numbers."""
    size, n, trunc = WINDOWS[window]
    now = now or timezone.now()
    # Buckets end at the current one; the last bucket is still filling.
    start = _floor(now, size) - size * (n - 1)
    opened = _per_bucket(TodoItem.objects.all(), "opened_at", trunc, start, start, size, n)
    closed = _per_bucket(
        TodoItem.objects.filter(status=TodoItem.Status.DONE), "closed_at", trunc, start, start, size, n
    )
    failures = list(
        Event.objects.filter(type=TodoAttemptFailed.event_type, recorded_at__gte=start)
        .order_by()
        .values_list("data__list", "data__key", "data__attempt", "recorded_at")
    )
    failed: dict[str, list[int]] = {}
    for name, _key, _attempt, at in failures:
        i = _bucket(at, start, size)
        if 0 <= i < n:
            failed.setdefault(name, [0] * n)[i] += 1
    closes = _close_percentiles(start)
    waits = _wait_percentiles(start, failures)
    per_minute = size.total_seconds() / 60
    out = []
    for s in lists:
        o, c, f = (d.get(s.name, [0] * n) for d in (opened, closed, failed))
        close_p = closes.get(s.name, (None, None))
        wait_p = waits.get(s.name, (None, None))
        out.append(
            ListCharts(
                name=s.name,
                title=s.title,
                window=window,
                charts=_list_series(s, o, c, f, per_minute),
                latency=Latency(wait_p[0], wait_p[1], close_p[0], close_p[1]),
                due=s.due,
                parked=s.parked,
            )
        )
    return out


def _list_series(
    s: ListStatus, opened: list[int], closed: list[int], failed: list[int], per_minute: float
) -> list[Chart]:
    """One list's charts from its counts per bucket; the backlog is folded back from now."""
    n = len(opened)
    backlog, level = [0] * n, s.open
    for i in range(n - 1, -1, -1):
        backlog[i] = level
        level = max(level - opened[i] + closed[i], 0)
    rate = [
        round(100 * failed[i] / (failed[i] + closed[i]), 1) if failed[i] + closed[i] else 0 for i in range(n)
    ]
    return [
        Chart(f"{s.name}-backlog", "backlog (open)", "items", [Series("open", backlog, "open")]),
        Chart(
            f"{s.name}-throughput",
            "opened / closed per minute",
            "/min",
            [
                Series("opened", [round(v / per_minute, 2) for v in opened], "opened"),
                Series("closed", [round(v / per_minute, 2) for v in closed], "closed"),
            ],
        ),
        Chart(f"{s.name}-failures", "failure rate", "%", [Series("failed attempts", rate, "failed")]),
    ]


def _floor(at: datetime.datetime, size: datetime.timedelta) -> datetime.datetime:
    epoch = datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)
    return epoch + size * int((at - epoch) / size)


def _wait_percentiles(
    since: datetime.datetime, failures: list[tuple[Any, Any, Any, datetime.datetime]]
) -> dict[str, tuple[float | None, float | None]]:
    """Opened -> first attempt's outcome, for items whose first attempt ended in the window: an
    item closed without a failure, or the record of its first failed attempt."""
    if backend().percentiles:
        items, events = TodoItem._meta.db_table, Event._meta.db_table
        sql = f"""
            SELECT list_name, percentile_cont(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY wait)
            FROM (
                SELECT list_name, EXTRACT(EPOCH FROM (closed_at - opened_at)) AS wait FROM {items}
                WHERE status = %s AND closed_at >= %s AND attempts = 0
                UNION ALL
                SELECT i.list_name, EXTRACT(EPOCH FROM (e.recorded_at - i.opened_at)) FROM {events} e
                JOIN {items} i ON i.list_name = e.data->>'list' AND i.key = e.data->>'key'
                WHERE e.type = %s AND e.recorded_at >= %s AND e.data->>'attempt' = '1'
                  AND e.recorded_at >= i.opened_at
            ) w GROUP BY list_name
        """
        with connection.cursor() as cursor:
            cursor.execute(sql, [TodoItem.Status.DONE, since, TodoAttemptFailed.event_type, since])
            return {name: tuple(p) for name, p in cursor.fetchall()}
    first_failed = {(name, key): at for name, key, attempt, at in failures if attempt == 1}
    rows = TodoItem.objects.order_by().values_list("list_name", "key", "opened_at", "closed_at", "attempts")
    by_list: dict[str, list[float]] = {}
    for name, key, opened, closed_at, attempts in rows:
        done_at_once = attempts == 0 and closed_at and closed_at >= since
        ended = first_failed.get((name, key)) or (closed_at if done_at_once else None)
        if ended and ended >= opened:
            by_list.setdefault(name, []).append((ended - opened).total_seconds())
    return {name: _p50_p95(v) for name, v in by_list.items()}

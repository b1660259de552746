"""The lists over time: backlog (open, due, parked), throughput, failure rate and latency for the
last hour (by minute) or the last day (by hour), read from the lists' rollup.

The rollup (todolists/rollup.py) is written by each list's projection from its items' changes,
at the events' own recorded_at: the charts are the log's history, and one query reads a window's
buckets whatever the size of the log. Levels are folded back from the present: open at the end
of a bucket = open now - opened after it + closed after it, and likewise parked, and retrying
(waiting out a backoff) with the backoffs begun and ended; due = open - parked - retrying.
Latency p50 and p95 are read from histogram buckets, interpolated inside the bucket, as
Prometheus' histogram_quantile does.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Iterable, Sequence

from django.utils import timezone

from todolists import rollup
from todolists.models import TodoListRollup
from todolists.ui.status import ListStatus, todo_lists_status

WINDOWS = {
    "hour": (TodoListRollup.Period.MINUTE, 60),
    "day": (TodoListRollup.Period.HOUR, 24),
}
CHART_W, CHART_H, PAD = 300, 84, 4


@dataclasses.dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float]
    css: str
    shown: float | None
    """The legend's number: what the whole chart says of this series (its chart's `legend` says
    what: the level now, or the window's total), never one bucket beside a chart of all of them.
    None: there is none (a failure rate with no attempts); the note says why."""
    note: str = ""

    @property
    def peak(self) -> float:
        return max(self.values, default=0)


@dataclasses.dataclass(frozen=True)
class Chart:
    id: str
    title: str
    unit: str
    series: list[Series]
    legend: str
    """What the legend's numbers are: "now", "in the last hour"."""
    legend_unit: str = ""
    width: int = CHART_W
    height: int = CHART_H

    @property
    def top(self) -> float:
        return max([s.peak for s in self.series] + [1])

    @property
    def lines(self) -> list[tuple[Series, str]]:
        """Each series with its SVG polyline points, scaled into the chart box."""
        out = []
        top = self.top  # once: every viewer's render draws every point
        for s in self.series:
            n = max(len(s.values) - 1, 1)
            pts = " ".join(
                f"{PAD + i * (self.width - 2 * PAD) / n:.1f},"
                f"{self.height - PAD - v / top * (self.height - 2 * PAD):.1f}"
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


Counts = dict[str, list[int]]
"""Per measure, its count in each bucket of the window (oldest first)."""


def _read(
    *, period: str, start: datetime.datetime, n: int, list_names: Iterable[str] | None
) -> dict[str, Counts]:
    """Per list, the rollup's counts in the window's buckets: one query."""
    size = rollup.PERIODS[TodoListRollup.Period(period)]
    rows = TodoListRollup.objects.filter(period=period, at__gte=start, at__lt=start + size * n)
    if list_names is not None:
        rows = rows.filter(list_name__in=list(list_names))
    out: dict[str, Counts] = {}
    for name, at, measure, count in rows.order_by().values_list("list_name", "at", "measure", "n"):
        out.setdefault(name, {}).setdefault(measure, [0] * n)[int((at - start) / size)] += count
    return out


def _fold_back(now: int, up: Sequence[int], down: Sequence[int]) -> list[int]:
    """A level at the end of each bucket, from its value now and what raised or lowered it."""
    level, out = now, [0] * len(up)
    for i in range(len(up) - 1, -1, -1):
        out[i] = max(level, 0)
        level = level - up[i] + down[i]
    return out


def _percentile(counts: Sequence[int], q: float) -> float | None:
    """The q-quantile of a latency histogram (rollup.EDGES), linear inside its bucket."""
    total = sum(counts)
    if not total:
        return None
    rank, seen = q * total, 0
    for i, c in enumerate(counts):
        if c and seen + c >= rank:
            if i == len(rollup.EDGES):  # the open bucket: its lower bound, as Prometheus does
                return float(rollup.EDGES[-1])
            lower = rollup.EDGES[i - 1] if i else 0.0
            return lower + (rollup.EDGES[i] - lower) * (rank - seen) / c
        seen += c
    return float(rollup.EDGES[-1])


def _latency(counts: Counts) -> Latency:
    def hist(kind: str) -> list[int]:
        return [sum(counts.get(f"{kind}:{i}", ())) for i in range(len(rollup.EDGES) + 1)]

    wait, close = hist(rollup.WAIT), hist(rollup.CLOSE)
    return Latency(
        _percentile(wait, 0.5), _percentile(wait, 0.95), _percentile(close, 0.5), _percentile(close, 0.95)
    )


def list_charts(
    *,
    window: str,
    lists: list[ListStatus],
    now: datetime.datetime | None = None,
    list_names: Iterable[str] | None = None,
) -> list[ListCharts]:
    """Charts for each list over `window` ("hour" or "day"), given the lists' present numbers
    (only the lists in `list_names` when given): one query."""
    period, n = WINDOWS[window]
    size = rollup.PERIODS[period]
    now = now or timezone.now()
    # Buckets end at the current one; the last bucket is still filling.
    start = rollup.floor(now, size) - size * (n - 1)
    wanted = None if list_names is None else set(list_names)
    counts = _read(period=period, start=start, n=n, list_names=wanted)
    per_minute = size.total_seconds() / 60
    return [
        ListCharts(
            name=s.name,
            title=s.title,
            window=window,
            charts=_list_series(s, counts.get(s.name, {}), n, per_minute, window=window),
            latency=_latency(counts.get(s.name, {})),
            due=s.due,
            parked=s.parked,
        )
        for s in lists
        if wanted is None or s.name in wanted
    ]


def window_of(asked: str | None) -> str:
    """The window a page asked for (?window=), the last hour unless it named another."""
    return asked if asked in WINDOWS else "hour"


def todo_list_charts(*, list_name: str, window: str) -> list[ListCharts]:
    """One list's charts for its own page: the lists' present numbers and that list's rollup
    (a fixed number of queries)."""
    # The charts read the items' counts only: no projection status (the page reads it once, for its notices).
    return list_charts(window=window, lists=todo_lists_status(projections=[]), list_names=[list_name])


def _list_series(s: ListStatus, counts: Counts, n: int, per_minute: float, *, window: str) -> list[Chart]:
    """One list's charts from its counts per bucket; the levels are folded back from now. The
    legends say what the whole window shows: a level as it is now (the line's right end), a
    count as the window's total, the failure rate over the window."""

    def c(measure: str) -> list[int]:
        return counts.get(measure, [0] * n)

    opened, closed, failed = c(rollup.OPENED), c(rollup.CLOSED), c(rollup.FAILED)
    open_ = _fold_back(s.open, opened, closed)
    parked = _fold_back(s.parked, c(rollup.PARKED_IN), c(rollup.PARKED_OUT))
    retrying = _fold_back(s.retrying, c(rollup.BACKOFF_IN), c(rollup.BACKOFF_OUT))
    due = [max(o - p - r, 0) for o, p, r in zip(open_, parked, retrying, strict=True)]
    in_window = f"in the last {window}"
    return [
        Chart(
            f"{s.name}-backlog",
            "backlog: open, due, parked",
            "items",
            [
                Series("open", open_, "open", open_[-1]),
                Series("due", due, "due", due[-1]),
                Series("parked", parked, "parked", parked[-1]),
            ],
            "now",
        ),
        Chart(
            f"{s.name}-throughput",
            "opened / closed per minute",
            "/min",
            [
                Series("opened", [round(v / per_minute, 2) for v in opened], "opened", sum(opened)),
                Series("closed", [round(v / per_minute, 2) for v in closed], "closed", sum(closed)),
            ],
            in_window,
        ),
        _failure_chart(s.name, failed, closed, in_window),
    ]


def _failure_chart(name: str, failed: Sequence[int], closed: Sequence[int], in_window: str) -> Chart:
    """Failed attempts / (failed attempts + closes) per bucket; the legend's is the window's."""
    rate = [round(100 * f / (f + c), 1) if f + c else 0 for f, c in zip(failed, closed, strict=True)]
    attempts = sum(failed) + sum(closed)
    return Chart(
        f"{name}-failures",
        "failure rate",
        "%",
        [
            Series(
                "failed attempts",
                rate,
                "failed",
                round(100 * sum(failed) / attempts, 1) if attempts else None,
                f"{sum(failed)} of {attempts}" if attempts else "no attempts",
            )
        ],
        in_window,
        legend_unit="%",
    )

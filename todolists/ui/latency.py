"""How long items wait and stay, per list, as Prometheus histograms read from the lists.

Per scrape, from the read models and the log (like every metric here): an item's time to close
is closed_at - opened_at, both its events' recorded times. Its wait before the first attempt
ends with that attempt's outcome: the close, for an item whose first attempt closed it (no
failed attempt on its row), or the record of its first failed attempt (TodoAttemptFailed with
attempt 1, read through the (type, position) index). One grouped query per histogram, plus
the first failed attempts and their items' opening times.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from typing import Any

from django.db.models import Count, F, Q, QuerySet, Sum
from prometheus_client.core import HistogramMetricFamily

from eventstore.models import Event
from todolists.events import TodoAttemptFailed
from todolists.models import TodoItem

BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)


def _histogram(name: str, doc: str, rows: dict[str, tuple[list[int], int, float]]) -> HistogramMetricFamily:
    h = HistogramMetricFamily(name, doc, labels=["list"])
    for list_name, (counts, total, seconds) in sorted(rows.items()):
        buckets = [(str(float(b)), counts[i]) for i, b in enumerate(BUCKETS)] + [("+Inf", total)]
        h.add_metric([list_name], buckets, sum_value=seconds)
    return h


def _grouped(qs: QuerySet[TodoItem], end: str) -> dict[str, tuple[list[int], int, float]]:
    """Cumulative bucket counts, count and sum of (end - opened_at) per list, in one query."""
    aggregates = {
        f"le{i}": Count("pk", filter=Q(**{f"{end}__lte": F("opened_at") + datetime.timedelta(seconds=b)}))
        for i, b in enumerate(BUCKETS)
    }
    # Read as mappings: the stubs' row type lists only the named annotations, not **aggregates.
    rows: Iterable[Mapping[str, Any]] = (
        qs.order_by()
        .values("list_name")
        .annotate(n=Count("pk"), s=Sum(F(end) - F("opened_at")), **aggregates)
    )
    return {
        r["list_name"]: (
            [r[f"le{i}"] for i in range(len(BUCKETS))],
            r["n"],
            r["s"].total_seconds() if r["s"] else 0.0,
        )
        for r in rows
    }


def latency_histograms() -> list[HistogramMetricFamily]:
    done = TodoItem.objects.filter(status=TodoItem.Status.DONE)
    close = _grouped(done, "closed_at")
    wait = _grouped(done.filter(attempts=0), "closed_at")
    first_failures = {
        (d["list"], d["key"]): at
        for d, at in Event.objects.filter(type=TodoAttemptFailed.event_type, data__attempt=1)
        .order_by()
        .values_list("data", "recorded_at")
    }
    if first_failures:
        keys = Q()
        for name, key in first_failures:
            keys |= Q(list_name=name, key=key)
        for name, key, opened in TodoItem.objects.filter(keys).values_list("list_name", "key", "opened_at"):
            seconds = max((first_failures[name, key] - opened).total_seconds(), 0.0)
            counts, total, s = wait.get(name, ([0] * len(BUCKETS), 0, 0.0))
            counts = [c + (seconds <= b) for c, b in zip(counts, BUCKETS, strict=True)]
            wait[name] = (counts, total + 1, s + seconds)
    return [
        _histogram("todo_item_wait_seconds", "Opened -> the first attempt's outcome", wait),
        _histogram("todo_item_close_seconds", "Opened -> closed", close),
    ]

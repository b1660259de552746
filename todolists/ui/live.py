"""The dashboard's numbers computed once per interval for every viewer, not once per viewer.

Each process keeps the snapshot of the current interval in Django's cache under a key named
after the interval, so ten open tabs refreshing every five seconds cost one computation per
interval per process (with a shared cache such as Redis, one for all). A page is at most one
interval old, which the page says.
"""

from __future__ import annotations

import dataclasses
import time

from django.core.cache import cache

from todolists.conf import conf
from todolists.ui.charts import ListCharts, list_charts
from todolists.ui.verdict import Verdict, process_verdict


@dataclasses.dataclass(frozen=True)
class Snapshot:
    dashboard: Verdict
    charts: list[ListCharts]
    window: str
    computed_at: float


def interval() -> float:
    return conf.live_interval_seconds


def live_snapshot(*, window: str = "hour") -> Snapshot:
    """The current interval's snapshot, computed by the first viewer of the interval.

    Viewers whose refresh lands while that first one computes are shown the previous interval's
    snapshot rather than computing it too: ten tabs refreshing together cost one computation,
    not ten at once (a plain get-or-set would let each of them miss and compute)."""

    def compute() -> Snapshot:
        d = process_verdict()
        return Snapshot(d, list_charts(window=window, lists=d.lists), window, time.time())

    if interval() <= 0:  # no caching (the test suite: each request sees what it just did)
        return compute()
    key, last_key = f"todo-live:{window}:{int(time.time() // interval())}", f"todo-live:{window}:last"
    snapshot: Snapshot | None = cache.get(key)
    if snapshot is not None:
        return snapshot
    if not cache.add(f"{key}:computing", True, timeout=interval() * 2):
        last: Snapshot | None = cache.get(last_key)
        if last is not None:
            return last
    # This viewer computes the interval's snapshot (or there is no earlier one to show yet).
    snapshot = compute()
    cache.set_many({key: snapshot, last_key: snapshot}, timeout=interval() * 2)
    return snapshot


def refresh_every_ms() -> int:
    """How often a page asks again: the interval, 5 s when caching is off."""
    return int(1000 * (interval() if interval() > 0 else 5))

"""GET /metrics: Prometheus text, computed per scrape from the read models and the log.

No in-process counters (they would reset with each worker and differ between processes): the
counters are counts of rows that only grow, items per list and closing event, and failed
attempts and parks in the log (few rows, read through the (type, position) index).

Authentication: with METRICS_TOKEN set, a scrape must send `Authorization: Bearer <token>`.
Without it the endpoint answers only when DEBUG is on, so a production deploy never exposes
it by accident (see README, Operating).
"""

import secrets
from collections.abc import Iterator

from django.conf import settings
from django.db.models import Count
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import Metric

from eventstore.models import Event
from eventstore.projections import ProjectionStatus
from todolists.lists import RUNNER_EVENTS
from todolists.models import TodoItem
from todolists.ui.latency import latency_histograms
from todolists.ui.status import ListStatus
from todolists.ui.verdict import Level, Verdict, process_verdict

COUNTED_EVENTS = sorted(RUNNER_EVENTS)


class TodoCollector:
    def collect(self) -> Iterator[Metric]:
        verdict = process_verdict()
        yield from self._levels(verdict)
        yield from self._list_gauges(verdict.lists)
        yield from self._projection_gauges(verdict.projections)
        yield from self._counters()
        yield from latency_histograms()

    def _list_gauges(self, lists: list[ListStatus]) -> Iterator[Metric]:
        gauges = {
            "open": "Items not done (due, retrying or parked)",
            "due": "Items due now",
            "retrying": "Items waiting out a backoff after a failed attempt",
            "parked": "Items parked until an operator retries them",
            "expired_leases": "Items whose lease ran out while still claimed",
        }
        for field, doc in gauges.items():
            g = GaugeMetricFamily(f"todo_list_{field}", doc, labels=["list"])
            for s in lists:
                g.add_metric([s.name], getattr(s, field))
            yield g
        oldest = GaugeMetricFamily(
            "todo_list_oldest_open_age_seconds", "Age of the oldest open item", labels=["list"]
        )
        due = GaugeMetricFamily(
            "todo_list_oldest_due_age_seconds", "How long the longest-due item has waited", labels=["list"]
        )
        stuck = GaugeMetricFamily(
            "todo_list_stuck", "1 when an item is due for longer than the list allows", labels=["list"]
        )
        for s in lists:
            oldest.add_metric([s.name], s.oldest_open_age_seconds or 0)
            due.add_metric([s.name], s.oldest_due_age_seconds or 0)
            stuck.add_metric([s.name], int(s.stuck))
        yield from (oldest, due, stuck)

    def _projection_gauges(self, projections: list[ProjectionStatus]) -> Iterator[Metric]:
        lag = GaugeMetricFamily(
            "projection_lag_events", "Events in the log the projection has not applied", labels=["projection"]
        )
        halted = GaugeMetricFamily(
            "projection_halted", "1 when the projection stopped on an event", labels=["projection"]
        )
        skipped = GaugeMetricFamily(
            "projection_skipped_events",
            "Events an operator told the projection to pass over",
            labels=["projection"],
        )
        parked = GaugeMetricFamily(
            "projection_parked_cases",
            "Business cases the projection parked on an event it could not apply (their later events wait)",
            labels=["projection"],
        )
        for p in projections:
            lag.add_metric([p.name], p.lag)
            halted.add_metric([p.name], int(p.halted))
            skipped.add_metric([p.name], p.skipped)
            parked.add_metric([p.name], p.parked)
        yield from (lag, halted, skipped, parked)
        yield GaugeMetricFamily(
            "eventlog_readers_held_back_seconds",
            "Age of the oldest write transaction readers cannot read past "
            "(0 until it passes EVENTSTORE_HELD_BACK_AFTER_SECONDS)",
            value=max((p.held_back_seconds or 0 for p in projections), default=0),
        )

    def _levels(self, verdict: Verdict) -> Iterator[Metric]:
        doc = "The verdict: 0 ok, 1 attention, 2 failing (todolists/ui/verdict.py)"
        process = GaugeMetricFamily("todo_process_level", doc, value=verdict.level.rank)
        per_list = GaugeMetricFamily("todo_list_level", doc, labels=["list"])
        for s in verdict.lists:
            per_list.add_metric([s.name], Level(s.level).rank)
        per_projection = GaugeMetricFamily("projection_level", doc, labels=["projection"])
        for r in verdict.projection_rows:
            per_projection.add_metric([r.status.name], r.level.rank)
        workers = GaugeMetricFamily("todo_workers_alive", "qcluster workers with a recent heartbeat")
        workers.add_metric([], len(verdict.live_workers))
        yield from (process, per_list, per_projection, workers)

    def _counters(self) -> Iterator[Metric]:
        opened = CounterMetricFamily(
            "todo_items_opened", "Items on the list, open or done (one per key)", labels=["list"]
        )
        closed = CounterMetricFamily(
            "todo_items_closed", "Items closed, by closing event", labels=["list", "event"]
        )
        rows = TodoItem.objects.order_by().values("list_name", "status", "closed_by").annotate(n=Count("pk"))
        per_list: dict[str, int] = {}
        for r in rows:
            per_list[r["list_name"]] = per_list.get(r["list_name"], 0) + r["n"]
            if r["status"] == TodoItem.Status.DONE:
                closed.add_metric([r["list_name"], r["closed_by"]], r["n"])
        for name, n in sorted(per_list.items()):
            opened.add_metric([name], n)
        recorded = CounterMetricFamily(
            "todo_events_recorded", "Failed attempts, parks and retries recorded in the log", labels=["type"]
        )
        counts = dict(
            Event.objects.filter(type__in=COUNTED_EVENTS)
            .order_by()
            .values_list("type")
            .annotate(n=Count("pk"))
        )
        for t in COUNTED_EVENTS:
            recorded.add_metric([t], counts.get(t, 0))
        yield from (opened, closed, recorded)


def _authorized(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    if not token:
        debug: bool = settings.DEBUG
        return debug
    given = request.headers.get("Authorization", "")
    return secrets.compare_digest(given.encode(), f"Bearer {token}".encode())


@never_cache
@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    if not _authorized(request):
        return JsonResponse(
            {
                "error": "send Authorization: Bearer <METRICS_TOKEN> (unset METRICS_TOKEN: /metrics is off unless DEBUG)"
            },
            status=401 if settings.METRICS_TOKEN else 403,
        )
    registry = CollectorRegistry(auto_describe=False)
    registry.register(TodoCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_PLAIN_0_0_4)

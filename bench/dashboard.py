"""The admin index (the debug dashboard of issue 6) rendered with 1,000,000 events and 100,000
TODO items on PostgreSQL, by Django's test client logged in as a superuser: median of a few renders.

The log is the one replay_1m uses (bench/seed.py). When the projections have not been replayed
over it (a replay of a million events takes minutes), the items are written directly from the
log's own events, as the lists would hold them, and the checkpoints are set to the head; the
result says which.
"""

from __future__ import annotations

import datetime
import statistics
import time

from bench import seed
from bench.common import Row, Target, log

NAME = "dashboard"
BUDGET = {"quick": 240, "full": 420}
SETTINGS = {
    "ALLOWED_HOSTS": "testserver,127.0.0.1,localhost",
    "SECURE_SSL_REDIRECT": "false",
    "DEBUG": "false",
    # Every render computes the numbers (no interval cache): the cost one viewer pays per interval.
    "TODO_LIVE_INTERVAL_SECONDS": "0",
}
PAGES = {"/admin/": "dashboard with charts", "/admin/process-map/": "process map"}
RENDERS = 7


def items_from_log(*, wanted: int) -> int:
    """Write list items as the three lists hold them after the first orders' events."""
    from eventstore.models import Event
    from todolists.models import TodoItem

    opens = {"OrderPlaced": "payments_to_issue", "PaymentIssued": "orders_to_confirm",
             "PaymentFailed": "orders_to_cancel"}  # fmt: skip
    closes = {"payments_to_issue": ("PaymentIssued", "PaymentFailed", "OrderCancelled"),
              "orders_to_confirm": ("OrderConfirmed", "OrderCancelled"),
              "orders_to_cancel": ("OrderCancelled", "OrderConfirmed")}  # fmt: skip
    items: dict[tuple[str, str], TodoItem] = {}
    events = Event.objects.order_by("position").values_list(
        "position", "type", "data", "correlation_id", "recorded_at"
    )
    for position, type_, data, correlation_id, at in events.iterator(chunk_size=5000):
        if type_ in opens and len(items) >= wanted:
            break
        if type_ in opens:
            name = opens[type_]
            items[name, data["order_id"]] = TodoItem(
                list_name=name, key=data["order_id"], correlation_id=correlation_id, payload=data,
                opened_at=at, opened_position=position, opened_by=type_, status=TodoItem.Status.OPEN,
            )  # fmt: skip
        for name, types in closes.items():
            item = items.get((name, data.get("order_id", "")))
            if type_ in types and item and item.status != TodoItem.Status.DONE:
                item.status, item.closed_at, item.closed_position, item.closed_by = (
                    "done",
                    at,
                    position,
                    type_,
                )
    TodoItem.objects.bulk_create(items.values(), batch_size=5000)
    return len(items)


def rollup_from_items() -> int:
    """Write the lists' rollup (todolists/rollup.py) as their projections would from these items:
    opened at opened_at, closed with its latency at closed_at (no attempt failed in the seed)."""
    import collections

    from todolists import rollup
    from todolists.models import TodoItem, TodoListRollup

    counts: collections.Counter[tuple[str, str, datetime.datetime, str]] = collections.Counter()
    items = TodoItem.objects.values_list("list_name", "opened_at", "closed_at")
    for name, opened_at, closed_at in items.iterator(chunk_size=5000):
        measures = [(rollup.OPENED, opened_at)]
        if closed_at is not None:
            bucket = rollup.latency_bucket((closed_at - opened_at).total_seconds())
            measures += [(rollup.CLOSED, closed_at), (f"{rollup.CLOSE}:{bucket}", closed_at),
                         (f"{rollup.WAIT}:{bucket}", closed_at)]  # fmt: skip
        for measure, at in measures:
            for period, size in rollup.PERIODS.items():
                counts[(name, period, rollup.floor(at, size), measure)] += 1
            counts[(name, TodoListRollup.Period.TOTAL, rollup.EPOCH, measure)] += 1
    TodoListRollup.objects.all().delete()
    TodoListRollup.objects.bulk_create(
        (TodoListRollup(list_name=k[0], period=k[1], at=k[2], measure=k[3], n=n) for k, n in counts.items()),
        batch_size=5000,
    )
    return len(counts)


def vacuum_analyze() -> None:
    """What autovacuum does soon after a bulk load: the planner's statistics, and the visibility
    map that lets a count be read from an index alone. Measured without it, a render pays for
    a table nobody has looked at yet."""
    from django.db import connection

    from todolists.models import TodoItem, TodoListRollup

    with connection.cursor() as cursor:
        for model in (TodoItem, TodoListRollup):
            cursor.execute(f"VACUUM ANALYZE {model._meta.db_table}")


def checkpoints_to_head(head: int) -> None:
    from eventstore.models import ProjectionCheckpoint
    from eventstore.projections import registry

    for name in registry.names():
        ProjectionCheckpoint.objects.update_or_create(name=name, defaults={"position": head})


def run(*, url: str, quick: bool, **_) -> list[Row]:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from bench.replay_1m import events_for
    from eventstore.projections import projection_status
    from todolists.models import TodoItem

    wanted = 10_000 if quick else 100_000
    head = seed.log_ensure(events=events_for(quick))
    behind = [s.name for s in projection_status() if s.lag > 0]
    how = "items projected by replay_projections"
    if behind or TodoItem.objects.count() < wanted:
        TodoItem.objects.all().delete()
        written = items_from_log(wanted=wanted)
        buckets = rollup_from_items()
        checkpoints_to_head(head)
        vacuum_analyze()
        how = (f"{written} items written from the log's events, and {buckets} rollup rows from the items"
               " (projections not replayed), checkpoints at head")  # fmt: skip
    items = TodoItem.objects.count()
    log(f"dashboard: {head} events, {items} items; {how}")

    user = get_user_model().objects.create_superuser("bench-admin", "bench@example.com", "bench-only")
    client = Client()
    client.force_login(user)
    rows = []
    for url_path, what in PAGES.items():
        timings = []
        for _render in range(RENDERS + 1):  # the first render warms caches and templates; not counted
            start = time.perf_counter()
            response = client.get(url_path)
            timings.append((time.perf_counter() - start) * 1000)
            if response.status_code != 200:
                raise SystemExit(f"{url_path} answered {response.status_code}")
        with CaptureQueriesContext(connection) as queries:
            client.get(url_path)
        median = statistics.median(timings[1:])
        log(f"{what}: median {median:.0f} ms over {RENDERS} renders, {len(queries)} queries")
        rows.append(
            Row(NAME, f"{url_path} render ({what}), {head:,} events, {items:,} items", RENDERS, median, "ms",
                higher_is_better=False, target=Target("value", maximum=300),
                note=f"median of {RENDERS} (max {max(timings[1:]):.0f} ms), {len(queries)} SQL queries; {how}")
        )  # fmt: skip
    return rows

"""Catch-up and replay of `orders`, `payments` and the "payments to issue" list, against raw
`executemany` of the same rows and against `eventsourcing`'s ProjectionRunner.

Rates are log events per second: the events of the seeded orders divided by the wall time to
bring all three read models up to date (ours: catch-up from empty, then a full replay).
"""

from __future__ import annotations

import collections
import json
import time

import psycopg
from django.db.models import Count

from bench import seed, tables
from bench.common import Deadline, Row, Target, log, per_second, profiled, timed

NAME = "catchup"
BUDGET = {"quick": 180, "full": 600}
SETTINGS: dict[str, str] = {}
PROJECTIONS = ("orders", "payments", "todo:payments_to_issue")
RAW_TYPES = ["OrderPlaced", "PaymentIssued", "PaymentFailed", "OrderConfirmed", "OrderCancelled"]
# Per event type: the read-model changes, in an order that keeps each order's causality in a batch.
CHANGES = {
    "OrderPlaced": ("order_insert", "payment_insert", "item_open"),
    "PaymentIssued": ("payment_issued", "item_close"),
    "PaymentFailed": ("payment_failed", "item_close"),
    "OrderConfirmed": ("order_confirmed",),
    "OrderCancelled": ("order_cancelled", "item_close"),
}
STATEMENT_ORDER = ("order_insert", "payment_insert", "item_open", "payment_issued", "payment_failed",
                   "item_close", "order_confirmed", "order_cancelled")  # fmt: skip


def ours(function, deadline: Deadline) -> int:
    applied = 0
    for name in PROJECTIONS:
        if deadline.passed():
            raise SystemExit(f"catch-up/replay ran out of its time budget before {name}")
        result = function(name=name)
        if result.error:
            raise SystemExit(f"{name} halted: {result.error}")
        applied += result.applied
    return applied


def raw_executemany(url: str, *, batch: int = 1000) -> float:
    """Seconds to read the same events in batches and write the same rows with executemany."""
    sql = tables.statements("raw")
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in tables.ddl("raw"):
            conn.execute(statement)
        start = time.perf_counter()
        after = 0
        while True:
            with conn.transaction():
                rows = conn.execute(
                    "SELECT position, type, data, recorded_at FROM eventstore_event"
                    " WHERE position > %s AND type = ANY(%s) ORDER BY position LIMIT %s",
                    (after, RAW_TYPES, batch),
                ).fetchall()
                if not rows:
                    break
                groups = collections.defaultdict(list)
                for position, type_, data, at in rows:
                    params = {**data, "at": at, "position": position, "closed_by": type_,
                              "payload": json.dumps(data)}  # fmt: skip
                    for change in CHANGES[type_]:
                        groups[change].append(params)
                with conn.cursor() as cur:
                    for change in STATEMENT_ORDER:
                        if groups[change]:
                            cur.executemany(sql[change], groups[change])
                after = rows[-1][0]
        return time.perf_counter() - start


def peer_project(url: str, orders: int, deadline: Deadline) -> tuple[float, int]:
    """(seconds, events) for eventsourcing's ProjectionRunner to project the same orders' events."""
    from eventsourcing.projection import ProjectionRunner

    from bench.peer import Shop, ShopProjection, ShopView, order_build, peer_env

    env = peer_env(url)
    app = Shop(env=env)
    for lo in range(0, orders, 500):
        app.save(*[order_build(i) for i in range(lo, min(lo + 500, orders))])
    head = app.recorder.max_notification_id()
    app.close()
    start = time.perf_counter()
    with ProjectionRunner(
        application_class=Shop, projection_class=ShopProjection, view_class=ShopView, env=env
    ) as runner:
        runner.wait(head, timeout=max(deadline.left(), 10))
    return time.perf_counter() - start, head or 0


def same_rows(url: str) -> str:
    """Check that ours, raw and the peer built the same read models: (status, count) per table."""
    from orders.models import Order
    from payments.models import Payment
    from todolists.models import TodoItem

    def counts(sql: str) -> list:
        with psycopg.connect(url) as conn:
            return sorted(conn.execute(sql).fetchall())

    ours = [
        sorted(Order.objects.values_list("status").annotate(n=Count("pk")).values_list("status", "n")),
        sorted(Payment.objects.values_list("status").annotate(n=Count("pk")).values_list("status", "n")),
        sorted(
            TodoItem.objects.filter(list_name="payments_to_issue")
            .values_list("status")
            .annotate(n=Count("pk"))
            .values_list("status", "n")
        ),
    ]
    for prefix in ("raw", "peer"):
        theirs = [
            counts(f"SELECT status, count(*) FROM {prefix}_{t} GROUP BY status")
            for t in ("order", "payment", "item")
        ]
        if [[tuple(r) for r in t] for t in theirs] != [[tuple(r) for r in t] for t in ours]:
            raise SystemExit(f"catchup: {prefix} built other rows than ours: {theirs} vs {ours}")
    return f"ours, raw and eventsourcing built the same rows: {ours}"


def run(*, url: str, quick: bool, profile: bool = False, **_) -> list[Row]:
    from eventstore.projections import projection_catch_up, projection_replay

    deadline = Deadline(BUDGET["quick" if quick else "full"])
    orders = 500 if quick else 10_000
    events = seed.log_seed(orders=orders)
    log(f"catchup: seeded {events} events of {orders} orders")

    catch_up_s = timed(lambda: ours(projection_catch_up, deadline))
    log(f"catchup: ours catch-up {per_second(events, catch_up_s):.0f} events/s")
    with profiled(profile, "replay of orders, payments, todo:payments_to_issue"):
        replay_s = timed(lambda: ours(projection_replay, deadline))
    log(f"catchup: ours replay {per_second(events, replay_s):.0f} events/s")
    raw_s = raw_executemany(url)
    log(f"catchup: raw executemany {per_second(events, raw_s):.0f} events/s")
    peer_s, peer_events = peer_project(url, orders, deadline)
    log(f"catchup: eventsourcing ProjectionRunner {per_second(peer_events, peer_s):.0f} events/s")

    agree = same_rows(url)
    rows = []
    for what, seconds in (("catch-up", catch_up_s), ("replay", replay_s)):
        ours_rate = per_second(events, seconds)
        rows.append(
            Row(NAME, f"{what} of 3 projections vs eventsourcing", events, ours_rate, "events/s",
                baseline=per_second(peer_events, peer_s), baseline_name="eventsourcing ProjectionRunner",
                target=Target("ratio", minimum=10), note=agree if what == "catch-up" else "")
        )  # fmt: skip
        rows.append(
            Row(NAME, f"{what} of 3 projections vs raw executemany", events, ours_rate, "events/s",
                baseline=per_second(events, raw_s), baseline_name="raw SQL, executemany per batch of 1000",
                target=Target("ratio", minimum=0.3))
        )  # fmt: skip
    return rows

"""The lists keep working during a replay: a real `qcluster` works the lists while
`replay_projections` rebuilds every projection of a large log in a subprocess, and 50 orders are
placed while it runs. Target (issue 7): all 50 confirmed before the replay ends.

The log is seeded by bulk SQL with orders that are all decided (no open items), and caught up
once, so the cluster has only the new orders to work.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.cluster import confirmed_latencies, percentile, running_cluster, wait_confirmed
from bench.common import Deadline, Row, Target, bench_env, log

NAME = "during_replay"
BUDGET = {"quick": 240, "full": 480}
SETTINGS = {"TODO_NUDGE": "true", "Q_WORKERS": "2"}
ROOT = Path(__file__).resolve().parent.parent
ORDERS = 50


def _seed_decided(orders: int) -> int:
    """`orders` orders, each placed, started, paid and confirmed: 4 events each, nothing open."""
    from django.db import connection

    from eventstore.store import log_head

    if log_head() >= orders * 4:
        return log_head()
    with connection.cursor() as cur:
        cur.execute(
            """
            INSERT INTO eventstore_event (stream_id, stream_version, type, schema_version, data,
                                          correlation_id, causation_id, actor, recorded_at)
            SELECT s.stream, s.v, s.type, 1, s.data, o.oid, '', 'bench', now()
            FROM (SELECT g, md5(g::text)::uuid::text AS oid FROM generate_series(1, %s) g) o
            CROSS JOIN LATERAL (VALUES
              ('order-' || o.oid, 1, 'OrderPlaced', jsonb_build_object('order_id', o.oid,
                 'customer', 'c', 'amount', '12.50', 'currency', 'EUR', 'payment_method', 'pm_card_visa'), 1),
              ('payment-' || o.oid, 1, 'PaymentStarted', jsonb_build_object('order_id', o.oid,
                 'idempotency_key', 'order-' || o.oid || '-payment'), 2),
              ('payment-' || o.oid, 2, 'PaymentIssued', jsonb_build_object('order_id', o.oid,
                 'payment_id', 'pi_' || o.g, 'amount', '12.50', 'currency', 'EUR'), 3),
              ('order-' || o.oid, 2, 'OrderConfirmed', jsonb_build_object('order_id', o.oid,
                 'payment_id', 'pi_' || o.g), 4)
            ) AS s(stream, v, type, data, k)
            ORDER BY o.g, s.k
            """,
            [orders],
        )
        cur.execute("ANALYZE eventstore_event")
    return log_head()


def run(*, url: str, quick: bool, **_) -> list[Row]:
    from django.db import connection

    from eventstore.projections import projections_catch_up
    from orders.commands import order_place

    head = _seed_decided(30_000 if quick else 75_000)
    start = time.perf_counter()
    projections_catch_up(batch_size=5000)
    log(f"{NAME}: {head} events caught up in {time.perf_counter() - start:.0f} s")
    with running_cluster(bench_env(url, **SETTINGS)):
        connection.close()
        replay = subprocess.Popen(
            [sys.executable, "manage.py", "replay_projections"],
            cwd=ROOT, env=bench_env(url), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        replay_started = time.time()
        placed: list[str] = []
        deadline = Deadline(BUDGET["quick" if quick else "full"] - 60)
        while len(placed) < ORDERS and replay.poll() is None and not deadline.passed():
            placed.append(order_place(amount="9.99", currency="EUR", customer=f"during-replay-{len(placed)}"))
            time.sleep(0.05)  # pacing the placements across the replay
        output, _errors = replay.communicate(timeout=max(deadline.left(), 1))
        replay_ended = time.time()
        if replay.returncode != 0:
            raise SystemExit(f"replay_projections failed:\n{output[-2000:]}")
        confirmed_before_end = _confirmed_before(placed, replay_ended)
        latencies = confirmed_latencies(placed) or wait_confirmed(placed, 30)
    seconds = replay_ended - replay_started
    note = (
        f"{len(placed)} orders placed during a {seconds:.1f} s replay of {head} events; "
        f"{confirmed_before_end} confirmed before it ended; p50 {statistics.median(latencies):.2f} s, "
        f"p99 {percentile(latencies, 99):.2f} s placed -> confirmed"
    )
    log(f"{NAME}: {note}")
    return [
        Row(NAME, "orders placed during a replay, confirmed before it ends", len(placed),
            confirmed_before_end, "orders", target=Target("value", minimum=ORDERS),
            missed=confirmed_before_end < len(placed) or len(placed) < ORDERS, note=note),
    ]  # fmt: skip


def _confirmed_before(order_ids: list[str], moment: float) -> int:
    import datetime

    from eventstore.models import Event

    cutoff = datetime.datetime.fromtimestamp(moment, tz=datetime.UTC)
    return (
        Event.objects.filter(type="OrderConfirmed", correlation_id__in=order_ids, recorded_at__lt=cutoff)
        .values("correlation_id")
        .distinct()
        .count()
    )

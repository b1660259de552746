"""Benchmarks: the event log and the process against raw SQL through psycopg, in the same run.

    DATABASE_URL=postgres://root@127.0.0.1:5432/root .venv/bin/python bench/run.py [--events 3000] [--orders 300]

Recreates a database named `bench` on that server. Prints a table, then one JSON line. The machine
is shared and noisy: compare the ratio to the raw-SQL baseline measured in the same run, not the
absolute rates. Each number is the best of --repeat runs.
"""

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

INSERT_ORDER = (
    "INSERT INTO orders_order (order_id, customer, amount, currency, payment_method, status,"
    " payment_id, cancel_reason, placed_at) VALUES (%s, %s, %s, %s, %s, 'placed', '', '', %s)"
)
INSERT_EVENT = (
    "INSERT INTO eventstore_event (stream_id, stream_version, type, schema_version, data, correlation_id,"
    " causation_id, actor, recorded_at) VALUES (%s, 1, %s, 1, %s, %s, '', 'bench', now())"
)


def setup_django(server_url: str) -> str:
    base = server_url.rsplit("/", 1)[0]
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS bench WITH (FORCE)")
        conn.execute("CREATE DATABASE bench")
    url = f"{base}/bench"
    os.environ.update(
        {"DATABASE_URL": url, "SECRET_KEY": "bench-only", "TODO_NUDGE": "false", "LOG_LEVEL": "ERROR"}
    )
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return url


def best_of(repeat: int, fn) -> float:
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return min(runs)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=3000, help="events per append and replay run")
    parser.add_argument("--orders", type=int, default=300, help="orders placed and worked in the process run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement; the best counts")
    args = parser.parse_args()
    server = os.environ.get("DATABASE_URL", "")
    if not server.startswith("postgres"):
        sys.exit("bench/run.py needs DATABASE_URL=postgres://... (it recreates a database named bench there)")
    url = setup_django(server)

    from eventstore.events import event_type
    from eventstore.projections import projection_replay
    from eventstore.store import event_append
    from orders.commands import order_place
    from todolists.runner import todo_lists_work

    @event_type("BenchRecorded")
    @dataclasses.dataclass(frozen=True, kw_only=True)
    class BenchRecorded:
        n: int

    raw = psycopg.connect(url, autocommit=True)
    n, counter = args.events, iter(range(10**9))

    def raw_append():
        # Baseline: what the store does, by hand: a transaction, the stream version, one INSERT.
        for _ in range(n):
            i = next(counter)
            with raw.transaction():
                raw.execute(
                    "SELECT max(stream_version) FROM eventstore_event WHERE stream_id = %s", (f"raw-{i}",)
                )
                raw.execute(INSERT_EVENT, (f"raw-{i}", "BenchRecorded", json.dumps({"n": i}), ""))

    def store_append():
        for _ in range(n):
            i = next(counter)
            event_append(stream_id=f"bench-{i}", events=[BenchRecorded(n=i)], expected_version=0)

    def seed_orders_placed():
        with raw.cursor() as cur:
            cur.executemany(
                INSERT_EVENT,
                [
                    (
                        f"order-seed-{i}",
                        "OrderPlaced",
                        json.dumps(
                            {
                                "order_id": f"seed-{i}",
                                "customer": "c",
                                "amount": "9.99",
                                "currency": "EUR",
                                "payment_method": "pm_card_visa",
                            }
                        ),
                        f"seed-{i}",
                    )
                    for i in range(n)
                ],
            )

    def raw_replay(row_by_row: bool = False):
        # Baseline: read OrderPlaced in batches of 1000 and insert the read-model rows with
        # executemany (pipelined), or one INSERT round trip per event as a handler does.
        with raw.transaction():
            raw.execute("DELETE FROM orders_order")
            after = 0
            while rows := raw.execute(
                "SELECT position, data, recorded_at FROM eventstore_event"
                " WHERE position > %s AND type = 'OrderPlaced' ORDER BY position LIMIT 1000",
                (after,),
            ).fetchall():
                values = [
                    (d["order_id"], d["customer"], d["amount"], d["currency"], d["payment_method"], at)
                    for _, d, at in rows
                ]
                with raw.cursor() as cur:
                    if row_by_row:
                        for v in values:
                            cur.execute(INSERT_ORDER, v)
                    else:
                        cur.executemany(INSERT_ORDER, values)
                after = rows[-1][0]

    def engine_replay():
        projection_replay(name="orders", batch_size=1000)

    def raw_process():
        # Baseline: only the writes the process cannot do without, each in its own transaction:
        # four events per order (placed, payment started, paid, confirmed) and one charge in the
        # gateway's ledger.
        for _ in range(args.orders):
            i = next(counter)
            for step in ("OrderPlaced", "PaymentStarted", "PaymentIssued", "OrderConfirmed"):
                with raw.transaction():
                    raw.execute(
                        INSERT_EVENT, (f"raw-process-{step}-{i}", "Raw" + step, json.dumps({"n": i}), "")
                    )
            with raw.transaction():
                raw.execute(
                    "INSERT INTO payments_inprocesscharge (idempotency_key, payment_id, order_id, amount_minor,"
                    " currency, payment_method, succeeded, decline_code, created_at)"
                    " VALUES (%s, %s, %s, 999, 'EUR', 'pm_card_visa', true, '', now())",
                    (f"raw-{i}", f"pi_raw_{i}", f"raw-{i}"),
                )

    def process():
        for i in range(args.orders):
            order_place(
                amount="9.99",
                currency="EUR",
                customer=f"bench-{i}",
                payment_method="pm_card_chargeCustomerFail" if i % 5 == 0 else "pm_card_visa",
            )
        todo_lists_work()

    results = []

    def record(name, count, baseline_s, ours_s):
        row = {"name": name, "n": count, "ours_per_s": round(count / ours_s)}
        if baseline_s is not None:
            row |= {"raw_sql_per_s": round(count / baseline_s), "ours_to_raw": round(baseline_s / ours_s, 3)}
        results.append(row)

    # The process first, on the empty log, so its catch-ups do not walk the other benchmarks' events.
    record("place + pay + confirm, inline", args.orders, best_of(1, raw_process), best_of(1, process))
    record(
        "append 1 event per transaction",
        n,
        best_of(args.repeat, raw_append),
        best_of(args.repeat, store_append),
    )
    seed_orders_placed()
    engine_s = best_of(args.repeat, engine_replay)
    record("replay orders vs executemany", n, best_of(args.repeat, raw_replay), engine_s)
    record(
        "replay orders vs row-by-row SQL",
        n,
        best_of(args.repeat, lambda: raw_replay(row_by_row=True)),
        engine_s,
    )

    print(f"{'benchmark':<34} {'n':>6} {'raw SQL/s':>10} {'ours/s':>8} {'ours/raw':>9}")
    for r in results:
        print(
            f"{r['name']:<34} {r['n']:>6} {r.get('raw_sql_per_s', '-'):>10} {r['ours_per_s']:>8}"
            f" {r.get('ours_to_raw', '-'):>9}"
        )
    print(json.dumps({"benchmarks": results}))


if __name__ == "__main__":
    main()

"""The inline pipeline: place N orders, then work every list inline until all are decided
(placed -> payment started -> paid or declined -> confirmed or cancelled), against the raw
baseline of only the unavoidable writes (4 events and 1 charge per order, each its own
transaction). Queries per order are counted on Django's default connection in a second, smaller run.
"""

from __future__ import annotations

import collections
import contextlib
import json
import threading
import time
from collections.abc import Iterator

import psycopg

from bench.common import Deadline, Row, Target, log, per_second, profiled, timed

NAME = "pipeline"
BUDGET = {"quick": 120, "full": 400}
SETTINGS: dict[str, str] = {}
DECIDED = ("OrderConfirmed", "OrderCancelled")

RAW_EVENT = (
    "INSERT INTO raw_event (stream_id, stream_version, type, schema_version, data, correlation_id,"
    " causation_id, actor, recorded_at) VALUES (%s, 1, %s, 1, %s, %s, '', 'bench', now())"
)
RAW_CHARGE = (
    "INSERT INTO raw_charge (idempotency_key, payment_id, order_id, amount_minor, currency, payment_method,"
    " succeeded, decline_code, created_at) VALUES (%s, %s, %s, 999, 'EUR', 'pm_card_visa', true, '', now())"
)


def todo_lists_work_import():
    from todolists.runner import todo_lists_work

    return todo_lists_work


def raw_process(url: str, n: int) -> float:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE raw_event (LIKE eventstore_event INCLUDING ALL)")
        conn.execute("CREATE TABLE raw_charge (LIKE payments_inprocesscharge INCLUDING ALL)")
        start = time.perf_counter()
        for i in range(n):
            for step in ("OrderPlaced", "PaymentStarted", "PaymentIssued", "OrderConfirmed"):
                with conn.transaction():
                    conn.execute(RAW_EVENT, (f"raw-{step}-{i}", step, json.dumps({"n": i}), f"raw-{i}"))
            with conn.transaction():
                conn.execute(RAW_CHARGE, (f"raw-{i}", f"pi_raw_{i}", f"raw-{i}"))
        return time.perf_counter() - start


def decided() -> int:
    from eventstore.models import Event

    return Event.objects.filter(type__in=DECIDED).count()


def process(n: int, first: int, deadline: Deadline) -> None:
    """Place n orders (every fifth declined), then work the lists until every order is decided."""
    from orders.commands import order_place

    todo_lists_work = todo_lists_work_import()
    goal = decided() + n
    for i in range(first, first + n):
        order_place(
            amount="9.99",
            currency="EUR",
            customer=f"bench-{i}",
            payment_method="pm_card_chargeCustomerFail" if i % 5 == 0 else "pm_card_visa",
        )
    while decided() < goal:
        if deadline.passed():
            raise SystemExit(f"pipeline: {goal - decided()} orders still undecided at the time budget's end")
        todo_lists_work()


@contextlib.contextmanager
def statements_counted() -> Iterator[collections.Counter]:
    """Count every statement sent to PostgreSQL on every connection of this process (the gateway's
    threads included), by its first words; transaction control is not a statement here."""
    counted: collections.Counter = collections.Counter()
    lock = threading.Lock()
    real = psycopg.Cursor.execute

    def execute(self, query, *args, **kwargs):
        text = query if isinstance(query, str) else getattr(query, "as_string", lambda _: str(query))(self)
        words = " ".join(str(text).split()[:4])[:60]
        if not words.upper().startswith(("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")):
            with lock:
                counted[words] += 1
        return real(self, query, *args, **kwargs)

    setattr(psycopg.Cursor, "execute", execute)  # noqa: B010 (mypy forbids assigning to a method)
    try:
        yield counted
    finally:
        setattr(psycopg.Cursor, "execute", real)  # noqa: B010


def run(*, url: str, quick: bool, profile: bool = False, **_) -> list[Row]:

    n = 100 if quick else 1000
    counted = 50 if quick else 200
    deadline = Deadline(BUDGET["quick" if quick else "full"])
    raw_s = raw_process(url, n)
    log(f"pipeline: raw {per_second(n, raw_s):.0f} orders/s")
    with profiled(profile, f"inline pipeline, {n} orders"):
        ours_s = timed(lambda: process(n, 0, deadline))
    log(f"pipeline: ours {per_second(n, ours_s):.0f} orders/s")
    with statements_counted() as statements:
        process(counted, n, deadline)
    per_order = sum(statements.values()) / counted
    top = "; ".join(f"{k}: {v / counted:.2f}" for k, v in statements.most_common(12))
    log(f"pipeline: {per_order:.1f} queries per order ({top})")
    return [
        Row(NAME, "place + pay + confirm, inline vs raw 5 inserts", n, per_second(n, ours_s), "orders/s",
            baseline=per_second(n, raw_s), baseline_name="raw SQL: 4 events + 1 charge, a transaction each",
            target=Target("ratio", minimum=0.4), note="1 in 5 orders declined and cancelled"),
        Row(NAME, "SQL statements per order, place to decided", counted, per_order, "queries",
            higher_is_better=False, target=Target("value", maximum=10),
            note=f"every connection, the gateway's threads included, place + work; per order: {top}"),
    ]  # fmt: skip

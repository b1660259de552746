"""A log of orders, payments and list events written fast by bulk SQL, with valid payloads.

Per order (i mod 20): 10% placed and started (open on "payments to issue"), 10% paid but not
confirmed (open on "orders to confirm"), 5% declined and cancelled, the rest confirmed: 3.7
events per order on average. The payloads carry exactly the fields of the event classes, which is
checked at run time against the registered types, and the columns are checked against the table.
"""

from __future__ import annotations

import dataclasses

from django.db import connection

EVENTS_PER_ORDER = 3.7

# type -> {field: SQL expression} (oid: the order id, i: the order's number)
PAYLOADS = {
    "OrderPlaced": {
        "order_id": "oid",
        "customer": "'customer-' || (i % 1000)",
        "amount": "'9.99'",
        "currency": "'EUR'",
        "payment_method": "'pm_card_visa'",
    },
    "PaymentStarted": {"order_id": "oid", "idempotency_key": "'order-' || oid || '-payment'"},
    "PaymentIssued": {
        "order_id": "oid",
        "payment_id": "'pi_bench_' || i",
        "amount": "'9.99'",
        "currency": "'EUR'",
    },
    "PaymentFailed": {
        "order_id": "oid",
        "decline_code": "'card_declined'",
        "message": "'Your card was declined.'",
    },
    "OrderConfirmed": {"order_id": "oid", "payment_id": "'pi_bench_' || i"},
    "OrderCancelled": {"order_id": "oid", "reason": "'payment failed: card_declined'"},
}


def _payload_sql(type_: str) -> str:
    return "jsonb_build_object(" + ", ".join(f"'{k}', {v}" for k, v in PAYLOADS[type_].items()) + ")"


PAID = "i % 10 <> 0 AND i % 20 <> 2"
STEPS = [  # (step, stream prefix, stream version, type, condition)
    (1, "order-", 1, "OrderPlaced", "true"),
    (2, "payment-", 1, "PaymentStarted", "true"),
    (3, "payment-", 2, "PaymentIssued", PAID),
    (3, "payment-", 2, "PaymentFailed", "i % 20 = 2"),
    (4, "order-", 2, "OrderConfirmed", f"{PAID} AND i % 10 <> 1"),
    (4, "order-", 2, "OrderCancelled", "i % 20 = 2"),
]
WRITTEN = {"stream_id", "stream_version", "type", "schema_version", "data", "correlation_id",
           "causation_id", "actor", "recorded_at"}  # fmt: skip


def _fields(cls: type) -> set[str]:
    if dataclasses.is_dataclass(cls):
        return {f.name for f in dataclasses.fields(cls)}
    return set(getattr(cls, "__struct_fields__", ()))  # msgspec.Struct


def check_contract() -> None:
    """Fail loudly if the payloads or the columns no longer match the code."""
    from eventstore.events import registered_types
    from eventstore.models import Event

    types = registered_types()
    for name, fields in PAYLOADS.items():
        keys = set(fields)
        declared = _fields(types[name])
        if keys != declared:
            raise SystemExit(f"seed payload of {name} has {sorted(keys)}, the event class {sorted(declared)}")
    table = Event._meta.db_table
    with connection.cursor() as cur:
        cur.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = %s"
            " AND is_nullable = 'NO' AND column_default IS NULL AND is_identity = 'NO'",
            [table],
        )
        missing = {r[0] for r in cur.fetchall()} - WRITTEN
    if missing:
        raise SystemExit(f"{table} has NOT NULL columns without a default the seed does not write: {missing}")


def log_seed(*, orders: int, start: int = 0, chunk: int = 25_000) -> int:
    """Append the events of `orders` orders numbered from `start`, one every 100 ms, the last one
    now (the dashboard's charts of the last hour and day then have history to show); returns
    the events written."""
    from eventstore.models import Event

    check_contract()
    steps = ",\n".join(
        f"({step}, '{prefix}' || oid, {version}, '{type_}', {_payload_sql(type_)}, {cond})"
        for step, prefix, version, type_, cond in STEPS
    ).replace("%", "%%")  # the modulo operator, next to real placeholders
    sql = f"""
        INSERT INTO {Event._meta.db_table} (stream_id, stream_version, type, schema_version, data,
            correlation_id, causation_id, actor, recorded_at)
        SELECT s.stream, s.version, s.type, 1, s.data, o.oid, '', 'bench', o.t0 + s.step * interval '1 ms'
        FROM (SELECT i, md5('bench-' || i)::uuid::text AS oid,
                     now() - (%s - i) * interval '100 ms' AS t0
              FROM generate_series(%s, %s) AS i) AS o
        CROSS JOIN LATERAL (VALUES {steps}) AS s(step, stream, version, type, data, keep)
        WHERE s.keep
        ORDER BY o.i, s.step
    """
    written = 0
    for lo in range(start, start + orders, chunk):
        hi = min(lo + chunk, start + orders) - 1
        with connection.cursor() as cur:  # one short transaction per chunk (autocommit)
            cur.execute(sql, [start + orders, lo, hi])
            written += cur.rowcount
    return written


def orders_for(events: int) -> int:
    return round(events / EVENTS_PER_ORDER)


def log_ensure(*, events: int) -> int:
    """Seed the log up to about `events` events unless it already holds them (replay_1m and
    dashboard share one database); returns the head."""
    from eventstore.store import log_head

    head = log_head()
    if head < events * 0.95:
        orders = orders_for(events)
        log_seed(orders=orders)
        head = log_head()
    return head

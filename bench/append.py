"""Append, one event per transaction, 1 and 4 writer processes: ours, raw psycopg, `eventsourcing`.

n events per round; the best of the rounds counts for each variant.

Writers are processes with their own connections (2 cores: threads would measure the GIL). Each
writer appends to new streams (expected version 0), as placing an order does. Also: the price of
building and validating/serialising one event on the append path, alone, in microseconds.
"""

from __future__ import annotations

import decimal
import json
import multiprocessing
import threading
import time
import uuid
from collections.abc import Callable

import psycopg

from bench.common import Deadline, Row, Target, log, timed

NAME = "append"
BUDGET = {"quick": 120, "full": 600}
SETTINGS: dict[str, str] = {}

RAW_INSERT = (
    "INSERT INTO raw_event (stream_id, stream_version, type, schema_version, data, correlation_id,"
    " causation_id, actor, recorded_at) VALUES (%s, %s + 1, 'OrderPlaced', 1, %s, %s, '', 'bench', now())"
)


def _order_placed_kwargs(i: int) -> dict:
    return {
        "order_id": str(uuid.UUID(int=i)),
        "customer": f"customer-{i % 1000}",
        "amount": decimal.Decimal("9.99"),
        "currency": "EUR",
        "payment_method": "pm_card_visa",
    }


def ours(tag: str) -> Callable[[int], None]:
    from eventstore.store import event_append
    from orders.events import OrderPlaced

    def append(i: int) -> None:
        kwargs = _order_placed_kwargs(i)
        event_append(
            stream_id=f"order-{tag}-{i}",
            events=[OrderPlaced(**kwargs)],
            expected_version=0,
            correlation_id=kwargs["order_id"],
        )

    return append


def raw(url: str, tag: str) -> Callable[[int], None]:
    conn = psycopg.connect(url, autocommit=True)

    def append(i: int) -> None:
        kwargs = _order_placed_kwargs(i)
        data = json.dumps({**kwargs, "amount": str(kwargs["amount"])})
        # BEGIN; INSERT with the version check (expected + 1, the unique constraint refuses a race); COMMIT
        with conn.transaction():
            conn.execute(RAW_INSERT, (f"order-{tag}-{i}", 0, data, kwargs["order_id"]))

    return append


def peer(url: str) -> Callable[[int], None]:
    from bench.peer import BenchOrder, Shop, peer_env

    # The parent created the tables: concurrent CREATE ... IF NOT EXISTS / OR REPLACE can collide.
    app = Shop(env={**peer_env(url), "CREATE_TABLE": "false"})

    def append(i: int) -> None:
        kwargs = _order_placed_kwargs(i)
        app.save(BenchOrder(**{**kwargs, "amount": str(kwargs["amount"])}))

    return append


def _writer(make: Callable[[], Callable[[int], None]], first: int, count: int, barrier) -> None:
    try:
        append = make()
        append(first)  # connect and warm up before the clock starts
    except BaseException:
        barrier.abort()  # the parent fails at once instead of waiting out the barrier
        raise
    barrier.wait()
    for i in range(first + 1, first + 1 + count):
        append(i)


def writers_run(make: Callable[[], Callable[[int], None]], *, n: int, writers: int, timeout: float) -> float:
    """Events per second of `writers` processes appending n events in all."""
    from django.db import connections

    connections.close_all()  # forked children open their own
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(writers + 1)
    per = n // writers
    procs = [ctx.Process(target=_writer, args=(make, k * (per + 1), per, barrier)) for k in range(writers)]
    for p in procs:
        p.start()
    try:
        barrier.wait(timeout=120)
    except threading.BrokenBarrierError:
        for p in procs:
            p.join(timeout=5)  # let the failed one print its traceback
            p.kill()
        raise SystemExit("an append writer failed while connecting (its traceback is above)") from None
    start = time.perf_counter()
    for p in procs:
        p.join(timeout=max(timeout - (time.perf_counter() - start), 1))
    elapsed = time.perf_counter() - start
    for p in procs:
        if p.is_alive():
            p.kill()
            raise SystemExit(f"append writers did not finish in {timeout:.0f} s")
        if p.exitcode != 0:
            raise SystemExit(f"an append writer failed (exit code {p.exitcode})")
    return per * writers / elapsed


def validation_cost(n: int) -> tuple[float, float]:
    """(µs to construct, µs to construct + check and encode) per event, as every append does."""
    from eventstore.events import event_encode as encode
    from orders.events import OrderPlaced

    args = [_order_placed_kwargs(i) for i in range(n)]

    def construct() -> None:
        for kwargs in args:
            OrderPlaced(**kwargs)

    def construct_encode() -> None:
        for kwargs in args:
            encode(OrderPlaced(**kwargs))

    best = [min(timed(f) for _ in range(3)) * 1e6 / n for f in (construct, construct_encode)]
    return best[0], best[1]


def run(*, url: str, quick: bool, **_) -> list[Row]:
    n, rounds = (200, 2) if quick else (1000, 3)
    deadline = Deadline(BUDGET["quick" if quick else "full"])
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE raw_event (LIKE eventstore_event INCLUDING ALL)")
    from bench.peer import Shop, peer_env

    Shop(env=peer_env(url)).close()  # creates its tables before the writers race to

    rows: list[Row] = []
    for writers in (1, 4):
        # Rounds interleave the variants, so a noisy minute on the shared machine hits all three;
        # each variant's best round counts.
        rates: dict[str, float] = {}
        for round_ in range(rounds):
            for variant, make in (
                ("ours", lambda tag=f"w{writers}r{round_}": ours(tag)),
                ("raw", lambda tag=f"w{writers}r{round_}": raw(url, tag)),
                ("eventsourcing", lambda: peer(url)),
            ):
                rate = writers_run(make, n=n, writers=writers, timeout=max(deadline.left(), 30))
                rates[variant] = max(rates.get(variant, 0.0), rate)
                log(f"append {writers} writer(s) {variant} round {round_ + 1}: {rate:.0f}/s")
        label = f"append, 1 event/tx, {writers} writer{'s' if writers > 1 else ''}"
        rows.append(
            Row(NAME, f"{label} vs eventsourcing", n, rates["ours"], "events/s",
                baseline=rates["eventsourcing"], baseline_name="eventsourcing Application.save()",
                target=Target("ratio", minimum=1.2 if writers == 1 else 1.5))
        )  # fmt: skip
        rows.append(
            Row(NAME, f"{label} vs raw psycopg", n, rates["ours"], "events/s",
                baseline=rates["raw"], baseline_name="raw psycopg BEGIN; INSERT; COMMIT",
                target=Target("ratio", minimum=0.6))
        )  # fmt: skip
    one_append_us = 1e6 / rows[0].value
    construct_us, total_us = validation_cost(20_000 if quick else 100_000)
    rows.append(
        Row(NAME, "event construction + validation/encoding, per event", 20_000 if quick else 100_000,
            total_us, "µs", higher_is_better=False,
            note=f"construction alone {construct_us:.1f} µs; encoder eventstore.events.event_encode; "
                 f"{100 * total_us / one_append_us:.1f}% of one 1-writer append ({one_append_us:.0f} µs)")
    )  # fmt: skip
    return rows

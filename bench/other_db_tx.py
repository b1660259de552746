"""Issue 15, point 2: only what can write to our log holds our readers back.

On a real `qcluster` (bench/cluster.py: ORM broker, Q_WORKERS=2, the minute sweep in place):

1. ORDERS orders placed one every 0.5 s (bench/cluster.py's placers) with nothing else running,
   then ORDERS more while a write transaction is held open for HOLD s in ANOTHER database of the
   same server (an INSERT into a scratch table, then pg_sleep inside the transaction). Placed ->
   confirmed p50 / p99 / max of both, and their ratio: target <= 1.5x. The run is void (missed)
   unless that transaction was still open when the last of its orders was confirmed.
2. An idle-in-transaction writer in OUR database for OWN_HOLD s (a forgotten psql session that
   wrote), orders placed one every 0.5 s meanwhile, and the verdict (`process_verdict()`) and the
   read bound (`log_visible_below()`) read every POLL s: how long the bound stayed at or below the
   writer's transaction id, how many orders were confirmed while it ran, how long after it ended
   the last of them was confirmed (it delays only as long as it must), and when the verdict named
   the writer's pid (at once: as soon as it is older than EVENTSTORE_HELD_BACK_AFTER_SECONDS).
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable

from bench.cluster import SETTINGS as CLUSTER_SETTINGS
from bench.cluster import percentile, place_at, running_cluster, wait_confirmed
from bench.common import Row, Target, bench_env, log
from bench.other_writers import held_open, other_database

NAME = "other_db_tx"
BUDGET = {"quick": 200, "full": 400}
SETTINGS = {**CLUSTER_SETTINGS, "Q_SAVE_LIMIT": "0"}
RATE = 2.0  # orders per second: one every 0.5 s
SIZES = {"quick": (10, 30.0, 8.0), "full": (20, 60.0, 10.0)}  # orders per phase, HOLD, OWN_HOLD
DRAIN_SECONDS = 30
POLL = 0.25
RECOVERY_TARGET = 3.0  # s from the writer's end to the last confirmation: the soak's bound


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def slowest(ids: list[str]) -> str:
    """The slowest order's own stages (bench/cluster.py's stage table), as evidence for a miss."""
    from bench.cluster import confirmed_latencies, stage_percentiles

    by_order = {i: confirmed_latencies([i]) for i in ids}
    worst = max((i for i in ids if by_order[i]), key=lambda i: by_order[i][0], default=None)
    if worst is None:
        return "no order confirmed"
    stages = stage_percentiles([worst])
    return f"slowest order {worst[:8]} ({by_order[worst][0]:.2f} s): " + "; ".join(
        f"{stage} {p50:.2f} s" for stage, (p50, _) in stages.items()
    )


def latency_rows(label: str, latencies: list[float], n: int, *, note: str = "") -> list[Row]:
    """placed -> confirmed p50, p99 and max of one phase (p99 of 20 is the max)."""
    stats: dict[str, Callable[[list[float]], float]] = {
        "p50": statistics.median,
        "p99": lambda v: percentile(v, 99),
        "max": max,
    }
    return [
        Row(NAME, f"{label}, placed -> confirmed {what}", n, fn(latencies) if latencies else float("nan"),
            "s", higher_is_better=False, note=note if what == "max" else "")
        for what, fn in stats.items()
    ]  # fmt: skip


def _placed(orders: int) -> tuple[list[str], list[float]]:
    ids, _achieved = place_at(RATE, orders / RATE)
    return ids, wait_confirmed(ids, DRAIN_SECONDS)


def _other_database(url: str, orders: int, hold: float) -> list[Row]:
    calm_ids, calm = _placed(orders)
    log(
        f"{NAME}: calm phase: {len(calm)}/{len(calm_ids)} confirmed, max {max(calm, default=0):.2f} s; {load()}"
    )
    with other_database(url) as other, held_open(other, hold) as writer:
        held_ids, held = _placed(orders)
        open_throughout = writer.running()  # still open once the last order was confirmed
        during = load()
    log(
        f"{NAME}: held phase: {len(held)}/{len(held_ids)} confirmed, max {max(held, default=0):.2f} s; {during}"
    )
    valid = open_throughout and len(held) == len(held_ids) and len(calm) == len(calm_ids)
    note = (f"{len(held)}/{len(held_ids)} confirmed while a write transaction (pid {writer.opened['pid']}) stayed"
            f" open {hold:.0f} s in database {other.rsplit('/', 1)[1]}; open when the last was confirmed:"
            f" {'yes' if open_throughout else 'NO (the run is void)'}; {during}; {slowest(held_ids)}")  # fmt: skip
    rows = latency_rows(
        "no other transaction",
        calm,
        len(calm_ids),
        note=f"{len(calm)}/{len(calm_ids)} confirmed; {slowest(calm_ids)}",
    )
    rows += latency_rows(
        f"write transaction open {hold:.0f} s in another database", held, len(held_ids), note=note
    )
    for row in rows[3:]:
        if row.name.endswith(("p50", "p99")):
            calm_row = next(r for r in rows[:3] if r.name.endswith(row.name[-3:]))
            # ratio = calm / held (lower is better): held at most 1.5x the calm value.
            row.baseline, row.baseline_name = (
                calm_row.value,
                "the same statistic with no other transaction, same run",
            )
            row.target, row.missed = Target("ratio", minimum=round(1 / 1.5, 3)), not valid
    return rows


def _verdict_names(pid: int) -> bool:
    from todolists.ui.verdict import process_verdict

    return any(f"pid {pid})" in finding.cause for finding in process_verdict().findings)


def _own_hold(url: str, seconds: float) -> tuple[list[str], dict[str, float]]:
    """Place orders and read the verdict and the bound while our own database's writer is idle in
    its transaction; returns the orders and when things were seen (time.time())."""
    from eventstore.store import log_visible_below
    from orders.commands import order_place

    ids: list[str] = []
    seen: dict[str, float] = {}
    with held_open(url, seconds, idle=True) as writer:
        xid, pid, opened = writer.opened["xid"], writer.opened["pid"], writer.opened["opened"]
        next_order = opened
        while writer.running():
            now = time.time()
            if now >= next_order and now < opened + seconds - 1:
                ids.append(order_place(amount="9.99", currency="EUR", customer="own-hold"))
                next_order += 1 / RATE
            bound = log_visible_below()
            if bound is not None and bound <= xid:
                seen.setdefault("first_held", now)
                seen["last_held"] = now
            if "named" not in seen and _verdict_names(pid):
                seen["named"] = time.time()
            time.sleep(POLL)  # the polling interval of the verdict and the bound
    seen |= {"opened": opened, "ended": writer.ended["ended"], "pid": pid}
    return ids, seen


def _confirmed_times(ids: list[str]) -> list[float]:
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute(
            "SELECT EXTRACT(EPOCH FROM recorded_at) FROM eventstore_event"
            " WHERE type = 'OrderConfirmed' AND correlation_id = ANY(%s)",
            [ids],
        )
        return [float(r[0]) for r in cur.fetchall()]


def _own_database(url: str, seconds: float) -> list[Row]:
    from django.conf import settings

    ids, seen = _own_hold(url, seconds)
    latencies = wait_confirmed(ids, DRAIN_SECONDS)
    done = _confirmed_times(ids)
    ended, opened = seen["ended"], seen["opened"]
    during = sum(1 for t in done if t < ended)
    recovery = max(done) - ended if len(done) == len(ids) else float("inf")
    held = seen.get("last_held", opened) - opened
    threshold = float(settings.EVENTSTORE_HELD_BACK_AFTER_SECONDS)
    named = seen["named"] - opened if "named" in seen else float("nan")
    label = f"idle-in-transaction writer {seconds:.0f} s in our database"
    note = (f"{len(ids)} orders placed while it was open ({ended - opened:.1f} s, pid {seen['pid']:.0f}); "
            f"{during} confirmed before it ended, {len(latencies)}/{len(ids)} within {DRAIN_SECONDS} s; "
            f"placed -> confirmed max {max(latencies, default=float('nan')):.2f} s; {load()}")  # fmt: skip
    log(
        f"{NAME}: own database: {note}; held {held:.1f} s, recovery {recovery:.2f} s, named after {named:.1f} s"
    )
    return [
        Row(NAME, f"{label}: readers held back (the bound at or below its id)", len(ids), held, "s",
            higher_is_better=False, note=note),
        Row(NAME, f"{label}: last confirmation after it ended", len(ids), recovery, "s",
            higher_is_better=False, target=Target("value", maximum=RECOVERY_TARGET), missed=during > 0),
        Row(NAME, f"{label}: the verdict named its pid after", 1, named, "s", higher_is_better=False,
            target=Target("value", maximum=threshold + 2 * POLL + 1),
            note=f"EVENTSTORE_HELD_BACK_AFTER_SECONDS is {threshold:g}: it is named once older than that"),
    ]  # fmt: skip


def run(*, url: str, quick: bool, **_) -> list[Row]:
    orders, hold, own_hold = SIZES["quick" if quick else "full"]
    with running_cluster(bench_env(url, **SETTINGS)):
        log(f"{NAME}: qcluster up (ORM broker), warm-up order confirmed; {load()}")
        rows = _other_database(url, orders, hold)
        rows += _own_database(url, own_hold)
    return rows

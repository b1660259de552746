"""Live-cluster latency: a real `manage.py qcluster` (Q_WORKERS=2; the ORM broker, or Redis when
REDIS_URL is set) on the bench database, orders placed at a fixed rate for a fixed time, and the
placed -> confirmed latency read from the log's recorded_at of OrderPlaced and OrderConfirmed.

"Kept up": the placements held the rate, and the backlog drained: every order was confirmed within
KEPT_UP_SECONDS of the last placement.
"""

from __future__ import annotations

import contextlib
import functools
import multiprocessing
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bench.common import Deadline, Row, Target, bench_env, log, timed

NAME = "cluster"
BUDGET = {"quick": 150, "full": 300}
SETTINGS = {"TODO_NUDGE": "true", "Q_WORKERS": "2"}
ROOT = Path(__file__).resolve().parent.parent
PLACERS = 2
DRAIN_SECONDS = 30  # how long the benchmark waits after the last placement for the confirmations
KEPT_UP_SECONDS = 5.0  # a backlog that drains within this after the last placement was kept up with


def confirmed_latencies(order_ids: list[str]) -> list[float]:
    from django.db import connection

    from eventstore.models import Event

    table = Event._meta.db_table
    with connection.cursor() as cur:
        cur.execute(
            f"SELECT EXTRACT(EPOCH FROM c.recorded_at - p.recorded_at) FROM {table} p"
            f" JOIN {table} c ON c.correlation_id = p.correlation_id AND c.type = 'OrderConfirmed'"
            " WHERE p.type = 'OrderPlaced' AND p.correlation_id = ANY(%s)",
            [order_ids],
        )
        return [float(r[0]) for r in cur.fetchall()]


def _drain_seconds(order_ids: list[str]) -> float:
    """Seconds from the last placement to the last confirmation of these orders."""
    from django.db import connection

    from eventstore.models import Event

    with connection.cursor() as cur:
        cur.execute(
            "SELECT EXTRACT(EPOCH FROM max(recorded_at) FILTER (WHERE type = 'OrderConfirmed')"
            f" - max(recorded_at) FILTER (WHERE type = 'OrderPlaced')) FROM {Event._meta.db_table}"
            " WHERE correlation_id = ANY(%s) AND type IN ('OrderPlaced', 'OrderConfirmed')",
            [order_ids],
        )
        value = cur.fetchone()[0]
    return float("inf") if value is None else float(value)


def wait_confirmed(order_ids: list[str], seconds: float) -> list[float]:
    deadline = Deadline(seconds)
    while True:
        latencies = confirmed_latencies(order_ids)
        if len(latencies) == len(order_ids) or deadline.passed():
            return latencies
        time.sleep(0.2)  # polling a condition with a deadline


def _placer(rate: float, count: int, offset: float, start: float, ids) -> None:
    from orders.commands import order_place

    placed = []
    for k in range(count):
        pause = start + offset + k / rate - time.time()
        if pause > 0:
            time.sleep(pause)  # pacing the load at the fixed rate
        placed.append(order_place(amount="9.99", currency="EUR", customer=f"live-{k}"))
    ids.put((placed, time.time()))


def place_at(rate: float, seconds: float) -> tuple[list[str], float]:
    """Place rate*seconds orders on a fixed schedule from PLACERS processes (one process cannot
    place 100/s on a loaded 2-core machine); returns the ids and the rate achieved."""
    from django.db import connections

    connections.close_all()  # each forked placer opens its own
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    per = int(rate * seconds) // PLACERS
    start = time.time() + 1  # every placer starts on the same clock
    procs = [
        ctx.Process(target=_placer, args=(rate / PLACERS, per, k / rate, start, queue))
        for k in range(PLACERS)
    ]
    for p in procs:
        p.start()
    results = [queue.get(timeout=seconds * 10 + 60) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    ids = [i for placed, _ in results for i in placed]
    return ids, len(ids) / (max(end for _, end in results) - start)


def _queued(broker: str) -> str:
    if broker != "ORM":
        return "?"
    from django_q.models import OrmQ

    return str(OrmQ.objects.count())


def _errors(path: str) -> str:
    """The cluster's last error lines, if any, for the note."""
    lines = [line.strip() for line in Path(path).read_text(errors="replace").splitlines()]
    errors = [line for line in lines if "ERROR" in line or "Error" in line][-2:]
    return ("; cluster log: " + " | ".join(e[:200] for e in errors)) if errors else ""


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


@contextlib.contextmanager
def running_cluster(env: dict[str, str]) -> Iterator[tuple[subprocess.Popen, str]]:
    """A real `qcluster` on the bench database, up once a warm-up order is confirmed; stopped with
    SIGTERM to its main pid at the end (its whole session is killed if it hangs)."""
    from orders.commands import order_place

    with tempfile.NamedTemporaryFile("w+", prefix="bench-qcluster-", suffix=".log", delete=False) as out:
        cluster = subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        warm = order_place(amount="9.99", currency="EUR", customer="warm-up")
        if len(wait_confirmed([warm], 60)) != 1:
            raise SystemExit(f"the cluster confirmed no order within 60 s; see {out.name}")
        yield cluster, out.name
    finally:
        os.kill(cluster.pid, signal.SIGTERM)  # the cluster's main pid: it stops its workers
        try:
            cluster.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(cluster.pid, signal.SIGKILL)  # the session this benchmark started
            cluster.wait()
        os.unlink(out.name)


# Where an order's time goes, from the log's recorded_at and the claim's timestamps
# (todolists.TodoItem.task_started_at and claimed_at, written by the claim's own UPDATE).
# An outcome's recorded_at is its append's transaction start: just after the gateway answered.
STAGES = (
    "placed -> payment task started",
    "task started -> payment claimed",
    "claimed -> gateway answered",
    "outcome appended -> confirm task started",
    "task started -> confirm claimed",
    "claimed -> confirmed",
)
_STAGE_SQL = """
    SELECT EXTRACT(EPOCH FROM pay_start - placed), EXTRACT(EPOCH FROM pay.claimed_at - pay_start),
           EXTRACT(EPOCH FROM issued - pay.claimed_at), EXTRACT(EPOCH FROM conf_start - issued),
           EXTRACT(EPOCH FROM conf.claimed_at - conf_start), EXTRACT(EPOCH FROM confirmed - conf.claimed_at)
    FROM (
        SELECT correlation_id,
               max(recorded_at) FILTER (WHERE type = 'OrderPlaced') AS placed,
               max(recorded_at) FILTER (WHERE type = 'PaymentIssued') AS issued,
               max(recorded_at) FILTER (WHERE type = 'OrderConfirmed') AS confirmed
        FROM eventstore_event WHERE correlation_id = ANY(%s) GROUP BY correlation_id
    ) e
    JOIN todolists_todoitem pay ON pay.list_name = 'payments_to_issue' AND pay.key = e.correlation_id
    JOIN todolists_todoitem conf ON conf.list_name = 'orders_to_confirm' AND conf.key = e.correlation_id
    -- a task already running (a later round, the takeover watch) claims without a task start of its own
    CROSS JOIN LATERAL (SELECT GREATEST(pay.task_started_at, placed) AS pay_start,
                               GREATEST(conf.task_started_at, issued) AS conf_start) s
    WHERE confirmed IS NOT NULL AND pay.claimed_at IS NOT NULL AND conf.claimed_at IS NOT NULL
"""


def stage_percentiles(order_ids: list[str]) -> dict[str, tuple[float, float]]:
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute(_STAGE_SQL, [order_ids])
        rows = [[float(v) for v in r] for r in cur.fetchall()]
    if not rows:
        return {}
    return {
        stage: (statistics.median(col), percentile(list(col), 99))
        for stage, col in zip(STAGES, zip(*rows, strict=True), strict=True)
    }


def inline_capacity(quick: bool) -> float:
    """Orders/s of the inline pipeline (bench/pipeline.py) on this database, measured now: the
    cluster's load is set as a fraction of it. The faster of two runs: a neighbour's burst only
    ever slows a run, and a low capacity would make the loads below too easy."""
    from django.test import override_settings

    from bench.pipeline import process

    n = 100 if quick else 300
    with override_settings(TODO_NUDGE=False):
        seconds = min(timed(functools.partial(process, n, first, Deadline(120))) for first in (0, n))
    return n / seconds


def run(*, url: str, quick: bool, **_) -> list[Row]:
    return run_broker(name=NAME, url=url, quick=quick, settings=SETTINGS)


def run_broker(*, name: str, url: str, quick: bool, settings: dict[str, str]) -> list[Row]:
    """At 10/s, at half and at 0.8x the inline capacity: placed -> confirmed p50 and p99, and
    the stage table; p99 at load against p99 at 10/s, as the ratio."""
    seconds = 5 if quick else 20
    capacity = inline_capacity(quick)
    log(f"{name}: inline capacity {capacity:.1f} orders/s")
    phases = [(10.0, "10/s"), (capacity / 2, "0.5x capacity"), (capacity * 0.8, "0.8x capacity")]
    env = bench_env(url, **settings)
    broker = "Redis" if "REDIS_URL" in env else "ORM"
    rows: list[Row] = []
    calm_p99 = None
    with running_cluster(env) as (cluster, log_path):
        log(f"{name}: qcluster up ({broker} broker), warm-up order confirmed")
        for rate, what in phases:
            ids, achieved = place_at(rate, seconds)
            latencies = wait_confirmed(ids, DRAIN_SECONDS)
            drained = _drain_seconds(ids)
            kept_up = len(latencies) == len(ids) and achieved >= 0.95 * rate and drained <= KEPT_UP_SECONDS
            alive = cluster.poll() is None
            p50 = statistics.median(latencies) if latencies else float("nan")
            p99 = percentile(latencies, 99) if latencies else float("nan")
            note = (f"{len(latencies)}/{len(ids)} confirmed within {DRAIN_SECONDS} s of the last placement;"
                    f" placed at {achieved:.1f}/s ({what}, inline capacity {capacity:.1f}/s) by {PLACERS} processes;"
                    f" last confirmation {drained:.1f} s after the last placement; kept up: {'yes' if kept_up else 'NO'}; {broker} broker;"
                    f" cluster {'running' if alive else 'EXITED'}; tasks in the broker queue: {_queued(broker)}{_errors(log_path)}")  # fmt: skip
            log(f"{name} {what}: p50 {p50:.3f} s, p99 {p99:.3f} s; {note}")
            label = f"{broker} broker, {what} ({rate:.0f}/s) for {seconds} s, placed -> confirmed"
            if calm_p99 is None:
                calm_p99 = p99
                target, baseline = None, None
            else:
                # p99 at load within 2x (half capacity) or 3x (0.8x) the p99 at 10/s: ratio >= 1/2, 1/3.
                target = Target("ratio", minimum=round(1 / (2 if rate < capacity * 0.6 else 3), 3))
                baseline = calm_p99
            rows.append(Row(name, f"{label}, p50", len(ids), p50, "s", higher_is_better=False))
            rows.append(
                Row(name, f"{label}, p99", len(ids), p99, "s", higher_is_better=False, note=note,
                    baseline=baseline, baseline_name="p99 at 10/s, same cluster, same run" if baseline else "",
                    target=target, missed=not kept_up if target else False,
                    stages=stage_percentiles(ids))
            )  # fmt: skip
    return rows

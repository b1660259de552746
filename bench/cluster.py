"""Live-cluster latency: a real `manage.py qcluster` (Q_WORKERS=2; the ORM broker, or Redis when
REDIS_URL is set) on the bench database, orders placed at a fixed rate for a fixed time, and the
placed -> confirmed latency read from the log's recorded_at of OrderPlaced and OrderConfirmed.

"Kept up": the placements held the rate, and the backlog drained: every order was confirmed within
KEPT_UP_SECONDS of the last placement.
"""

from __future__ import annotations

import contextlib
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

from bench.common import Deadline, Row, Target, bench_env, log

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


def run(*, url: str, quick: bool, **_) -> list[Row]:
    phases = [(10, 3), (100, 2)] if quick else [(10, 20), (100, 20)]
    env = bench_env(url, **SETTINGS)
    broker = "Redis" if "REDIS_URL" in env else "ORM"
    rows = []
    with running_cluster(env) as (cluster, log_path):
        log(f"cluster: qcluster up ({broker} broker), warm-up order confirmed")
        for rate, seconds in phases:
            ids, achieved = place_at(rate, seconds)
            latencies = wait_confirmed(ids, DRAIN_SECONDS)
            drained = _drain_seconds(ids)
            kept_up = len(latencies) == len(ids) and achieved >= 0.95 * rate and drained <= KEPT_UP_SECONDS
            alive = cluster.poll() is None
            queued = _queued(broker)
            p50 = statistics.median(latencies) if latencies else float("nan")
            p99 = percentile(latencies, 99) if latencies else float("nan")
            note = (f"{len(latencies)}/{len(ids)} confirmed within {DRAIN_SECONDS} s of the last placement;"
                    f" placed at {achieved:.1f}/s by {PLACERS} processes;"
                    f" last confirmation {drained:.1f} s after the last placement; kept up: {'yes' if kept_up else 'NO'}; {broker} broker;"
                    f" cluster {'running' if alive else 'EXITED'}; tasks in the broker queue: {queued}{_errors(log_path)}")  # fmt: skip
            log(f"cluster {rate}/s: p50 {p50:.3f} s, p99 {p99:.3f} s; {note}")
            label = f"live cluster {rate}/s for {seconds} s, placed -> confirmed"
            rows.append(Row(NAME, f"{label}, p50", len(ids), p50, "s", higher_is_better=False))
            rows.append(
                Row(NAME, f"{label}, p99", len(ids), p99, "s", higher_is_better=False, note=note,
                    target=Target("value", maximum=2.0) if rate >= 100 else None, missed=not kept_up)
            )  # fmt: skip
    return rows

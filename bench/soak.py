"""Issue 15's soak: wake-ups are never lost and nothing spins, beside a busy other database.

On a real `qcluster` (bench/cluster.py: ORM broker, Q_WORKERS=2), one order every EVERY s for
SECONDS s (bench/cluster.py's placers), while another database of the server commits a write
transaction every 0.1 s that each stays open 1 s (bench/other_writers.py's churn: about ten
overlap). Targets: every order confirmed within 3 s of its placement; none waits for the sweep;
no item is claimed more often than its attempts allow.

- **The sweep**: its schedule is deleted before the cluster starts (as tests/test_add_a_step.py
  does), so only the nudges drive the lists. An order whose wake-up was lost would wait for a
  later order's nudge (EVERY s later) or never be confirmed. Both are counted: an order whose item
  was first claimed by a task that started after the next order was placed waited on someone
  else's wake-up (the claim log below has each claim's task start).
- **Claims**: the code keeps only an item's last claim (`claimed_at`, `task_started_at`), its
  failed attempts (`attempts`) and a `TodoAttemptFailed` event per failure. To count every claim,
  the bench database (only it) gets a trigger that logs each change of `claimed_at` (a claim sets
  it to the claim's transaction start) to a table of its own. An item may be claimed once per
  failed attempt plus once for the attempt that succeeded: claims > attempts + 1 is a hot loop.
"""

from __future__ import annotations

import statistics
import time

from bench.cluster import SETTINGS as CLUSTER_SETTINGS
from bench.cluster import percentile, place_at, running_cluster, stage_percentiles, wait_confirmed
from bench.common import Row, Target, bench_env, log
from bench.other_db_tx import load, slowest
from bench.other_writers import churning, other_database

NAME = "soak"
BUDGET = {"quick": 150, "full": 300}
SETTINGS = {**CLUSTER_SETTINGS, "Q_SAVE_LIMIT": "0"}
EVERY = 3.0
SECONDS = {"quick": 30, "full": 90}
CHURN_EVERY, CHURN_OPEN = 0.1, 1.0
TARGET_SECONDS = 3.0
DRAIN_SECONDS = 60

CLAIM_LOG = """
    CREATE TABLE IF NOT EXISTS bench_claims (list_name text, key text, claimed_at timestamptz,
                                             task_started_at timestamptz, claimed_by text, attempts int);
    CREATE OR REPLACE FUNCTION bench_claim_logged() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO bench_claims VALUES (NEW.list_name, NEW.key, NEW.claimed_at, NEW.task_started_at,
                                         NEW.claimed_by, NEW.attempts);
        RETURN NULL;
    END $$;
    DROP TRIGGER IF EXISTS bench_claim_logged ON todolists_todoitem;
    CREATE TRIGGER bench_claim_logged AFTER UPDATE OF claimed_at ON todolists_todoitem FOR EACH ROW
        WHEN (NEW.claimed_at IS DISTINCT FROM OLD.claimed_at) EXECUTE FUNCTION bench_claim_logged();
"""

# Per item of these orders: its claims, its failed attempts (the counter, and the log's events).
_CLAIMS_SQL = """
    SELECT i.list_name, i.key, i.attempts, count(c.*) AS claims,
           (SELECT count(*) FROM eventstore_event e WHERE e.type = 'TodoAttemptFailed'
              AND e.data->>'list' = i.list_name AND e.data->>'key' = i.key) AS failed
    FROM todolists_todoitem i LEFT JOIN bench_claims c ON c.list_name = i.list_name AND c.key = i.key
    WHERE i.key = ANY(%s) GROUP BY i.list_name, i.key, i.attempts
"""

# Per order: when it was placed, and when the first task that claimed each of its items started.
_WAKE_SQL = """
    SELECT p.correlation_id, EXTRACT(EPOCH FROM p.recorded_at),
           EXTRACT(EPOCH FROM max(c.first_task) FILTER (WHERE c.list_name = 'payments_to_issue')),
           EXTRACT(EPOCH FROM max(c.first_task) FILTER (WHERE c.list_name = 'orders_to_confirm'))
    FROM eventstore_event p
    LEFT JOIN (SELECT list_name, key, min(task_started_at) AS first_task FROM bench_claims
               GROUP BY list_name, key) c ON c.key = p.correlation_id
    WHERE p.type = 'OrderPlaced' AND p.correlation_id = ANY(%s)
    GROUP BY p.correlation_id, p.recorded_at ORDER BY p.recorded_at
"""


def _prepare() -> None:
    """Log every claim (bench database only), and delete the minute sweep."""
    from django.db import connection
    from django_q.models import Schedule

    with connection.cursor() as cur:
        cur.execute(CLAIM_LOG)
    Schedule.objects.filter(func="todolists.tasks.sweep").delete()


def _claims(ids: list[str]) -> tuple[int, str]:
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute(_CLAIMS_SQL, [ids])
        items = cur.fetchall()
    over = [(lst, key, claims, attempts) for lst, key, attempts, claims, _ in items if claims > attempts + 1]
    note = (f"{len(items)} items, {sum(r[3] for r in items)} claims (at most {max((r[3] for r in items), default=0)}"
            f" per item), {sum(r[2] for r in items)} failed attempts on the counters,"
            f" {sum(r[4] for r in items)} TodoAttemptFailed events; over the limit: {over[:3] or 'none'}")  # fmt: skip
    return len(over), note


def _woken_late(ids: list[str]) -> tuple[int, str]:
    """Orders whose item was first claimed by a task started after the next order's placement."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute(_WAKE_SQL, [ids])
        rows = cur.fetchall()
    late = []
    for (order, _placed, *tasks), nxt in zip(rows, [*rows[1:], None], strict=True):
        next_placed = float(nxt[1]) if nxt else float("inf")
        if any(t is None or float(t) > next_placed for t in tasks):
            late.append(order[:8])
    return len(late), f"orders first claimed by a later order's task (or never): {late or 'none'}"


def _nudge_tasks(since: float) -> str:
    """What the nudge tasks said (django-q2 keeps every result: Q_SAVE_LIMIT=0)."""
    import datetime

    from django_q.models import Task

    results = [
        str(t.result) for t in Task.objects.filter(
            func="todolists.tasks.work_lists", started__gte=datetime.datetime.fromtimestamp(since, tz=datetime.UTC)
        )
    ]  # fmt: skip
    held = sum(r.startswith("held back") for r in results)
    idle = sum(bool(r) and all(" 0 worked" in part for part in r.split(", ")) for r in results)
    return f"{len(results)} nudge tasks: {held} held back and handed on, {idle} worked nothing"


def run(*, url: str, quick: bool, **_) -> list[Row]:
    seconds = SECONDS["quick" if quick else "full"]
    _prepare()
    with running_cluster(bench_env(url, **SETTINGS)) as (cluster, _log), other_database(url) as other:
        with churning(other, seconds * 3, every=CHURN_EVERY, open_for=CHURN_OPEN) as writer:
            start, before = time.time(), load()
            log(f"{NAME}: qcluster up, the sweep deleted, churn in {other.rsplit('/', 1)[1]}; {before}")
            ids, _achieved = place_at(1 / EVERY, seconds)
            latencies = wait_confirmed(ids, DRAIN_SECONDS)
            after, alive = load(), cluster.poll() is None
        churn = writer.ended
    over, claims_note = _claims(ids)
    late, late_note = _woken_late(ids)
    churn_note = (f"other database: {churn.get('committed')} write transactions committed in {churn.get('seconds')} s"
                  f" ({churn.get('max_open')} open at once at most, {churn.get('late')} submits found every thread busy)")  # fmt: skip
    note = (f"{len(latencies)}/{len(ids)} confirmed; {churn_note}; {_nudge_tasks(start)}; cluster"
            f" {'running' if alive else 'EXITED'}; {before} at the start, {after} at the end; {slowest(ids)}")  # fmt: skip
    log(f"{NAME}: {note}; {claims_note}; {late_note}")
    label = f"1 order / {EVERY:g} s for {seconds} s, another database churning"
    worst = max(latencies) if len(latencies) == len(ids) else float("inf")
    return [
        Row(NAME, f"{label}, placed -> confirmed p50", len(ids), statistics.median(latencies) if latencies else float("nan"), "s", higher_is_better=False),
        Row(NAME, f"{label}, placed -> confirmed p99", len(ids), percentile(latencies, 99) if latencies else float("nan"), "s", higher_is_better=False),
        Row(NAME, f"{label}, placed -> confirmed max", len(ids), worst, "s", higher_is_better=False,
            target=Target("value", maximum=TARGET_SECONDS), note=note, stages=stage_percentiles(ids)),
        Row(NAME, "orders that waited for another order's wake-up (no sweep)", len(ids), late, "orders",
            higher_is_better=False, target=Target("value", maximum=0), note=late_note),
        Row(NAME, "items claimed more than their failed attempts + 1", len(ids), over, "items",
            higher_is_better=False, target=Target("value", maximum=0), note=claims_note),
    ]  # fmt: skip

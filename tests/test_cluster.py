"""End to end on a real django-q2 cluster: nudges after commit, the minute schedule, clean stop."""

from collections import Counter
from types import SimpleNamespace

import pytest
from django.db import connection
from django.db.models import Count
from django_q.models import Schedule

from eventstore.models import Event
from orders.models import Order
from payments.models import InProcessCharge
from tests.factories import PlacedOrderFactory
from todolists.ui.status import todo_lists_status

# The data migration only reads its schema editor's connection (the alias `migrate` runs on).
MIGRATING = SimpleNamespace(connection=connection)


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_cluster_confirms_paid_orders_and_cancels_declined_ones(qcluster, wait_until):
    paid = [PlacedOrderFactory() for _ in range(50)]
    failed = [PlacedOrderFactory(declined=True) for _ in range(10)]

    def all_terminal() -> bool:
        return Order.objects.filter(status__in=["confirmed", "cancelled"]).count() == 60

    # The nudges do the work; the test only reads the read models the cluster keeps up to date.
    wait_until(
        lambda: all_terminal() or qcluster.poll() is not None, timeout=120, message="60 terminal orders"
    )
    assert qcluster.poll() is None, qcluster.log_path.read_text()[-3000:]
    statuses = dict(Order.objects.values_list("order_id", "status"))
    assert {statuses[o] for o in paid} == {"confirmed"}
    assert {statuses[o] for o in failed} == {"cancelled"}
    wait_until(
        lambda: all(s.open == 0 and s.lag == 0 for s in todo_lists_status()),
        timeout=60,
        message="empty lists",
    )
    issued = Event.objects.filter(type="PaymentIssued").values("correlation_id").annotate(n=Count("pk"))
    assert sorted(r["correlation_id"] for r in issued) == sorted(paid) and {r["n"] for r in issued} == {1}
    charges = InProcessCharge.objects.values("order_id").annotate(n=Count("pk"))
    assert len(charges) == 60 and {r["n"] for r in charges} == {1}


@pytest.mark.django_db
def test_migrate_creates_exactly_one_minute_sweep_schedule():
    [sweep] = Schedule.objects.filter(name="todolists.sweep")
    assert (sweep.func, sweep.schedule_type, sweep.minutes, sweep.repeats) == (
        "todolists.tasks.sweep",
        Schedule.MINUTES,
        1,
        -1,
    )
    # Running the migration step again keeps one row.
    from importlib import import_module

    from django.apps import apps

    import_module("todolists.migrations.0002_sweep_schedule").create_schedule(apps, MIGRATING)
    assert Schedule.objects.filter(name="todolists.sweep").count() == 1


@pytest.mark.django_db
def test_the_sweep_task_works_every_list(no_nudge):
    from todolists.tasks import sweep

    PlacedOrderFactory()
    assert "payments_to_issue: 1 worked" in sweep()
    assert Order.objects.get().status == "confirmed"


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_when_every_nudge_is_lost_the_minute_schedule_still_does_the_work(
    start_qcluster, wait_until, no_nudge
):
    """TODO_NUDGE off stands in for a lost task: only django-q2's own scheduler can get the work done."""
    from importlib import import_module

    from django.apps import apps
    from django.utils import timezone

    # flushed by earlier tests
    import_module("todolists.migrations.0002_sweep_schedule").create_schedule(apps, MIGRATING)
    Schedule.objects.filter(name="todolists.sweep").update(
        next_run=timezone.now() - timezone.timedelta(minutes=1)
    )
    orders = [PlacedOrderFactory() for _ in range(3)] + [PlacedOrderFactory(declined=True)]
    cluster = start_qcluster(TODO_NUDGE="false")  # the cluster's own outcomes nudge nothing either
    # django-q2 checks schedules about every 30 s, the first time about 30 s after it starts.
    wait_until(
        lambda: (
            Order.objects.filter(status__in=["confirmed", "cancelled"]).count() == 4
            or cluster.poll() is not None
        ),
        timeout=150,
        message="the scheduled sweep to finish 4 orders",
    )
    assert cluster.poll() is None, cluster.log_path.read_text()[-3000:]
    assert sorted(Order.objects.values_list("status", flat=True)) == ["cancelled"] + ["confirmed"] * 3
    assert InProcessCharge.objects.filter(order_id__in=orders).count() == 4


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_two_clusters_on_a_redis_broker_share_the_work_and_charge_once(
    start_qcluster, redis_broker, wait_until
):
    """Scale-out: two "machines" run a qcluster each on Redis; orders come from another process."""
    import subprocess
    import sys
    from pathlib import Path

    from tests.conftest import database_url_for_subprocess

    clusters = [start_qcluster(REDIS_URL=redis_broker, Q_WORKERS="1") for _ in range(2)]
    env = {
        **__import__("os").environ,
        "DATABASE_URL": database_url_for_subprocess(),
        "REDIS_URL": redis_broker,
    }
    subprocess.run(
        [sys.executable, "manage.py", "simulate", "--orders", "40", "--decline-rate", "0.25", "--seed", "7"],
        cwd=Path(__file__).resolve().parent.parent,
        env=env,
        check=True,
        capture_output=True,
    )
    wait_until(
        lambda: (
            Order.objects.filter(status__in=["confirmed", "cancelled"]).count() == 40
            or any(c.poll() is not None for c in clusters)
        ),
        timeout=120,
        message="40 terminal orders",
    )
    assert all(c.poll() is None for c in clusters)
    charges = InProcessCharge.objects.values("order_id").annotate(n=Count("pk"))
    assert len(charges) == 40 and {r["n"] for r in charges} == {1}
    issued = Event.objects.filter(type="PaymentIssued").values("correlation_id").annotate(n=Count("pk"))
    assert {r["n"] for r in issued} == {1}
    assert Order.objects.filter(status="confirmed").count() == len(issued)


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_a_killed_cluster_s_items_are_taken_over_within_seconds_and_charged_once(
    start_qcluster, redis_broker, wait_until
):
    """Two "machines" on Redis, 300 ms per charge. One is killed (-9, its whole process group) while
    it holds items: the other takes them over when their short leases run out, long before the
    minute sweep (there is no sweep schedule here at all), and every key is charged once."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from django.db.models import Max
    from django.utils import timezone

    from tests.conftest import database_url_for_subprocess
    from todolists.models import TodoItem

    orders = 20  # few enough that the survivor runs out of work before the dead leases end
    Schedule.objects.all().delete()  # only the takeover can finish the dead cluster's items
    # A nudge per append (no coalescing), so both clusters get tasks and the victim holds items.
    env = {
        "REDIS_URL": redis_broker,
        "Q_WORKERS": "1",
        "INPROCESS_GATEWAY_LATENCY_MS": "300",
        "TODO_NUDGE_COALESCE_SECONDS": "0",
    }
    victim, survivor = start_qcluster(**env), start_qcluster(**env)
    # The orders are placed while the clusters work: the clusters keep up with the placement, so
    # the victim holds items while orders still arrive, not necessarily after the last one.
    placing = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "simulate",
            "--orders",
            str(orders),
            "--decline-rate",
            "0.2",
            "--seed",
            "11",
        ],
        cwd=Path(__file__).resolve().parent.parent,
        env={**os.environ, **env, "DATABASE_URL": database_url_for_subprocess()},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def victim_workers() -> list[str]:
        """The items (one entry each) that the victim's worker processes hold now."""
        holders = TodoItem.objects.filter(status="open").exclude(claimed_by="")
        return [by for by in holders.values_list("claimed_by", flat=True) if _process_group(by) == victim.pid]

    held_at_kill: list[str] = []

    def victim_holds() -> bool:
        held_at_kill[:] = victim_workers()
        return bool(held_at_kill)

    wait_until(victim_holds, timeout=60, message="the victim to hold items")
    start_qcluster.crash(victim)  # right after the check that saw it holding items
    killed_at = timezone.now()
    held = len(held_at_kill)
    assert placing.wait(timeout=120) == 0

    def all_decided() -> bool:
        return Order.objects.filter(status__in=["confirmed", "cancelled"]).count() == orders

    wait_until(
        lambda: all_decided() or survivor.poll() is not None, timeout=90, message=f"{orders} decided orders"
    )
    assert survivor.poll() is None, survivor.log_path.read_text()[-3000:]
    last = Event.objects.filter(type__in=["OrderConfirmed", "OrderCancelled"]).aggregate(
        t=Max("recorded_at")
    )["t"]
    print(
        f"\ntakeover: {held} items held at the kill; last order decided {(last - killed_at).total_seconds():.1f} s after it"
    )
    charges = InProcessCharge.objects.values("order_id").annotate(n=Count("pk"))
    assert len(charges) == orders and {r["n"] for r in charges} == {1}
    for outcome in ("PaymentIssued", "PaymentFailed", "OrderConfirmed", "OrderCancelled"):
        per_order = Event.objects.filter(type=outcome).values("correlation_id").annotate(n=Count("pk"))
        assert {r["n"] for r in per_order} <= {1}, outcome
    decided = Event.objects.filter(type__in=["OrderConfirmed", "OrderCancelled"]).values("correlation_id")
    assert decided.count() == orders == len({r["correlation_id"] for r in decided})


def _process_group(worker: str) -> int | None:
    """The process group of a worker id "host:pid" (each test cluster has its own group)."""
    import os

    try:
        return os.getpgid(int(worker.rsplit(":", 1)[1]))
    except ProcessLookupError:
        return None


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_two_machines_at_a_steady_rate_both_work_and_neither_starves(start_qcluster, settings, wait_until):
    """Two "machines" (two qclusters, each its own processes and settings) on the ORM broker and one
    database; orders placed at a steady 4/s for 15 s. Each machine claims a fair part of the items:
    neither starves while the other takes every task."""
    import time

    from todolists.models import TodoItem

    settings.TODO_NUDGE = True
    machines = [
        start_qcluster(Q_WORKERS="1", INPROCESS_GATEWAY_LATENCY_MS="20"),
        start_qcluster(Q_WORKERS="2", Q_POLL="0.3"),
    ]
    rate, seconds = 4, 15
    start = time.monotonic()
    placed = []
    for k in range(rate * seconds):
        pause = start + k / rate - time.monotonic()
        if pause > 0:
            time.sleep(pause)  # pacing the load at a steady rate, not waiting for a result
        placed.append(PlacedOrderFactory(declined=k % 5 == 0))

    def decided() -> bool:
        return Order.objects.filter(
            order_id__in=placed, status__in=["confirmed", "cancelled"]
        ).count() == len(placed)

    wait_until(
        lambda: decided() or any(m.poll() is not None for m in machines), timeout=120, message="all decided"
    )
    assert all(m.poll() is None for m in machines)
    # A closed item keeps its last claim: "host:pid" of the worker that decided it.
    by_machine = Counter(
        _process_group(by)
        for by in TodoItem.objects.filter(status="done").values_list("claimed_by", flat=True)
        if by
    )
    shares = [by_machine[m.pid] for m in machines]
    total = sum(by_machine.values())
    print(f"\nitems decided per machine: {shares} of {total}")
    assert total >= len(placed), by_machine  # each order: a payment and a confirmation or cancellation
    assert all(share >= total // 10 for share in shares), f"a machine starved: {shares} of {total}"
    charges = InProcessCharge.objects.values("order_id").annotate(n=Count("pk"))
    assert len(charges) == len(placed) and {r["n"] for r in charges} == {1}

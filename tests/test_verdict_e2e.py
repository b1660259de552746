"""The verdict tells the truth, end to end: real qcluster processes on the test database, each
breakdown turns the verdict to the level named within the time named, seen through
`todo_status --check --json`, /health/process/ and the dashboard, and back to ok once resolved;
/health/ (readiness) answers 200 throughout.

Thresholds are the defaults but for the worker's heartbeat (1 s here, so a stopped cluster shows
in seconds, not in the default 15 + 30 s) and the lease (3 s, so a dead worker's items are free
sooner).
"""

from __future__ import annotations

import io
import json
import signal
import time

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from eventstore.models import Event
from eventstore.projections import projection_status
from orders.models import Order
from tests.factories import PlacedOrderFactory, poison_order_placed
from todolists.models import TodoItem
from todolists.pause import todo_list_pause, todo_list_resume
from todolists.ui.error_groups import todo_error_group_act

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

CLUSTER = {"TODO_HEARTBEAT_SECONDS": "1", "TODO_LEASE_SECONDS": "3"}


@pytest.fixture
def fast_heartbeat(settings, monkeypatch):
    from eventstore.projections import registry as projections

    settings.TODO_WORKER_DEAD_AFTER_SECONDS = 3
    settings.TODO_NO_WORKER_AFTER_SECONDS = 5
    # The suite's own test projection is unknown to the cluster's processes, so none reads it.
    monkeypatch.delitem(projections._items, "test_applied", raising=False)


@pytest.fixture
def seen(admin_client):
    """The verdict as each reader sees it: {"cli", "process", "dashboard"} levels and reasons;
    asserts /health/ answers 200 every time."""

    def look() -> dict:
        assert admin_client.get(reverse("health")).status_code == 200
        out = io.StringIO()
        try:
            call_command("todo_status", "--check", "--json", stdout=out)
            exit_code = 0
        except CommandError as exc:
            exit_code = exc.returncode
        cli = json.loads(out.getvalue())
        response = admin_client.get(reverse("health_process"))
        process = response.json()
        assert response.status_code == (503 if process["status"] == "failing" else 200)
        page = admin_client.get(reverse("admin:index"))
        dashboard = page.context["dashboard"]
        assert exit_code == {"ok": 0, "attention": 1, "failing": 2}[cli["status"]]
        return {
            "cli": cli["status"],
            "process": process["status"],
            "dashboard": str(dashboard.level),
            "reasons": process["reasons"],
            "html": page.content.decode(),
            "body": process,
        }

    return look


def wait_level(seen, level: str, *, timeout: float, contains: str = "") -> dict:
    """Wait until all three readers say `level` (and a reason contains `contains`); at the
    deadline, fail with what they said last."""
    deadline = time.monotonic() + timeout
    while True:
        last = seen()
        same = {last["cli"], last["process"], last["dashboard"]} == {level}
        if same and (not contains or any(contains in r for r in last["reasons"])):
            return last
        if time.monotonic() > deadline:
            said = {k: last[k] for k in ("cli", "process", "dashboard")}
            pytest.fail(f"no verdict {level} with {contains!r} within {timeout} s: {said} {last['reasons']}")
        time.sleep(0.5)


def stop(proc) -> None:
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0


def all_decided(order_ids) -> bool:
    return Order.objects.filter(order_id__in=order_ids, status__in=["confirmed", "cancelled"]).count() == len(
        order_ids
    )


def test_a_failing_gateway_turns_failing_within_60_s_with_its_error_group_and_back_to_ok(
    start_qcluster, fast_heartbeat, seen, wait_until
):
    broken = start_qcluster(**CLUSTER, INPROCESS_GATEWAY_FAILURE_RATE="1", TODO_MAX_ATTEMPTS="1")
    wait_level(seen, "ok", timeout=30)
    orders = [PlacedOrderFactory() for _ in range(3)]
    failing = wait_level(
        seen, "failing", timeout=60, contains="attempts failed, "
    )  # within 60 s of the first order
    [reason] = [r for r in failing["reasons"] if "attempts failed" in r]
    assert reason.startswith("Payments to issue: ") and "with GatewayUnavailable (503)" in reason
    assert reason.endswith(
        "the gateway is failing: pause the list until it recovers, then retry the parked items"
    )
    assert "GatewayUnavailable (503)" in failing["html"]  # the error group on the dashboard
    wait_until(
        lambda: TodoItem.objects.filter(list_name="payments_to_issue", status="parked").count() == 3,
        timeout=60,
        message="three parked payments",
    )
    group = seen()["body"]["error_groups"]
    assert group == [
        {"list_name": "payments_to_issue", "kind": "GatewayUnavailable (503)", "parked": 3, "retrying": 0}
    ]

    # The gateway recovers; the operator retries the group, new orders go through.
    stop(broken)
    start_qcluster(**CLUSTER)
    result = todo_error_group_act(
        list_name="payments_to_issue",
        kind="GatewayUnavailable (503)",
        action="retry",
        reason="gateway back",
        actor="ops",
    )
    assert len(result.recorded) == 3 and not result.refused
    orders += [PlacedOrderFactory() for _ in range(10)]
    wait_until(lambda: all_decided(orders), timeout=120, message="every order decided")
    wait_level(seen, "ok", timeout=60)
    retried = Event.objects.filter(type="TodoRetryRequested", actor="ops")
    assert [e.data["reason"] for e in retried] == ["gateway back"] * 3


def test_every_cluster_stopped_turns_failing_naming_the_missing_worker_and_back_to_ok(
    start_qcluster, fast_heartbeat, seen, wait_until, settings
):
    cluster = start_qcluster(**CLUSTER)
    first = [PlacedOrderFactory() for _ in range(2)]
    wait_until(lambda: all_decided(first), timeout=60, message="the first orders decided")
    wait_level(seen, "ok", timeout=30)
    last_worker = seen()["body"]["workers"][0]["worker"]
    stop(cluster)
    stopped = time.monotonic()
    orders = [PlacedOrderFactory() for _ in range(5)]
    failing = wait_level(seen, "failing", timeout=60, contains="no worker is running")
    took = time.monotonic() - stopped
    threshold = settings.TODO_WORKER_DEAD_AFTER_SECONDS + settings.TODO_NO_WORKER_AFTER_SECONDS
    assert took <= threshold + 10, f"failing {took:.0f} s after the stop (threshold {threshold} s)"
    [reason] = [r for r in failing["reasons"] if "no worker is running" in r]
    assert "the last one, " in reason and reason.endswith("start `manage.py qcluster`")
    names = {w["worker"] for w in failing["body"]["workers"]}
    assert any(n in reason for n in names) and last_worker in names
    assert "no worker is running" in failing["html"]

    start_qcluster(**CLUSTER)
    wait_until(lambda: all_decided(orders), timeout=120, message="the waiting orders decided")
    wait_level(seen, "ok", timeout=60)


def test_a_worker_killed_holding_items_is_named_until_they_are_taken_over(
    start_qcluster, fast_heartbeat, seen, wait_until
):
    slow = {**CLUSTER, "Q_WORKERS": "1", "INPROCESS_GATEWAY_LATENCY_MS": "1500"}
    victim = start_qcluster(**slow)
    orders = [PlacedOrderFactory() for _ in range(6)]
    holder: list[str] = []

    def holds() -> bool:
        holder[:] = list(
            TodoItem.objects.filter(status="open").exclude(claimed_by="").values_list("claimed_by", flat=True)
        )
        return bool(holder)

    wait_until(holds, timeout=60, message="the victim to hold items")
    start_qcluster.crash(victim)
    attention = wait_level(seen, "failing", timeout=60, contains=f"held by {holder[0]}")
    # Failing, because no worker runs at all; the held items name their dead worker.
    assert any(
        f"held by {holder[0]}, whose lease ran out" in r and r.endswith("start `manage.py qcluster`")
        for r in attention["reasons"]
    )
    assert holder[0] in attention["html"]

    start_qcluster(**CLUSTER)
    more = [PlacedOrderFactory()]  # its nudge makes the new cluster take the dead worker's items over
    wait_until(lambda: all_decided(orders + more), timeout=120, message="every order decided")
    after = wait_level(seen, "ok", timeout=60)
    assert not any(holder[0] in r for r in after["reasons"])


def test_a_poison_event_parks_only_its_order_while_the_cluster_decides_the_others_and_one_skip_resolves_it(
    start_qcluster, fast_heartbeat, seen, wait_until
):
    from payments.models import InProcessCharge

    start_qcluster(**CLUSTER)
    poison = poison_order_placed()  # bypassed the append checks (written by SQL, or an older release)
    order_id = poison.correlation_id
    placed_at = time.monotonic()
    after = [PlacedOrderFactory() for _ in range(3)]
    wait_until(lambda: all_decided(after), timeout=120, message="the orders after the poison decided")
    print(f"\norders after a poison event decided {time.monotonic() - placed_at:.1f} s after placement")
    attention = wait_level(seen, "attention", timeout=60, contains="business case(s) parked in orders")
    assert f"event #{poison.position} (OrderPlaced)" in " ".join(attention["reasons"])
    assert 'id="parked-cases"' in attention["html"] and f'data-case="{order_id}"' in attention["html"]
    assert not any(p.halted for p in projection_status())
    assert not InProcessCharge.objects.filter(order_id=order_id).exists()

    call_command("parked_case_skip", order_id, "--reason", "bad import")
    [skip] = Event.objects.filter(type="ParkedEventSkipped", correlation_id=order_id)
    assert skip.data["projections"] == ["orders", "payments", "todo:payments_to_issue"]
    after.append(PlacedOrderFactory())
    wait_until(lambda: all_decided(after), timeout=120, message="the orders after the skip decided")
    wait_level(seen, "ok", timeout=60)
    assert InProcessCharge.objects.filter(order_id__in=after).count() == len(after)  # once each
    assert not InProcessCharge.objects.filter(order_id=order_id).exists()


def test_a_paused_list_is_not_worked_and_resumes_where_it_was(
    start_qcluster, fast_heartbeat, seen, wait_until
):
    from django_q.models import Task

    start_qcluster(**CLUSTER)
    todo_list_pause(list_name="payments_to_issue", reason="gateway maintenance", actor="ops")
    paused_at = timezone.now()
    orders = [PlacedOrderFactory() for _ in range(3)]
    paused = wait_level(seen, "attention", timeout=60, contains="is paused by ops (gateway maintenance)")
    assert "PAUSED" in paused["html"]
    wait_until(
        lambda: TodoItem.objects.filter(list_name="payments_to_issue", status="open").count() == 3,
        timeout=30,
        message="the list collects the new orders",
    )
    # Nudged at every placement, and the nudges ran, yet nothing is charged while paused.
    wait_until(
        lambda: Task.objects.filter(func="todolists.tasks.work_lists", started__gte=paused_at).exists(),
        timeout=60,
        message="nudge tasks run while paused",
    )
    assert not Event.objects.filter(type__in=["PaymentStarted", "TodoAttemptFailed"]).exists()
    assert seen()["body"]["lists"]["payments_to_issue"]["paused"] is True

    todo_list_resume(list_name="payments_to_issue", reason="maintenance over", actor="ops")
    wait_until(lambda: all_decided(orders), timeout=120, message="the paused orders decided")
    wait_level(seen, "ok", timeout=60)

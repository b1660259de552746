"""The verdict, inline (no cluster): each finding's level and sentence, the operator actions it
offers (error groups, pause and resume, one skip for every halted projection), and a fixed
number of queries. End to end on a real cluster: tests/test_verdict_e2e.py."""

from __future__ import annotations

import datetime

import django_q.brokers
import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from eventstore.models import Event
from eventstore.projections import projection_status, projections_catch_up
from tests.conftest import process_snapshot
from tests.factories import PlacedOrderFactory, poison_order_placed
from todolists.heartbeat import worker_heartbeat_beat
from todolists.models import TodoItem, TodoListPause, WorkerHeartbeat
from todolists.pause import PauseRefused, todo_list_pause, todo_list_resume
from todolists.ui.error_groups import todo_error_group_act
from todolists.ui.verdict import Level, error_kind, process_verdict

pytestmark = pytest.mark.django_db
PAY = "payments_to_issue"


@pytest.fixture
def gateway_down(no_nudge, settings):
    settings.TODO_MAX_ATTEMPTS, settings.TODO_BACKOFF_SECONDS = 3, 0
    settings.INPROCESS_GATEWAY_FAILURE_RATE = 1.0


@pytest.fixture
def live_worker():
    worker_heartbeat_beat(worker="host-a:101", started_at=timezone.now())


def test_error_kind_keeps_the_name_and_the_status_not_the_details():
    assert error_kind("GatewayUnavailable: in-process gateway: injected transient failure (503)") == (
        "GatewayUnavailable (503)"
    )
    assert error_kind("NoOutcome: the work finished without recording an outcome") == "NoOutcome"


def test_a_failing_gateway_is_failing_with_the_error_group_and_parked_items_are_attention(gateway_down):
    for _ in range(3):
        PlacedOrderFactory()
    call_command("process_todos")
    verdict = process_verdict()
    assert verdict.level == Level.FAILING, verdict.reasons
    [failing, parked] = verdict.findings_of(f"list:{PAY}")
    assert failing.level == Level.FAILING and parked.level == Level.ATTENTION
    assert (
        failing.cause == "Payments to issue: 9 of the last 9 attempts failed, 9 with GatewayUnavailable (503)"
    )
    assert failing.next_step.startswith("the gateway is failing")
    assert failing.since == Event.objects.filter(type="TodoAttemptFailed").first().recorded_at
    assert parked.cause == "Payments to issue: 3 item(s) parked (3 GatewayUnavailable (503))"
    [group] = verdict.error_groups
    assert (group.list_name, group.kind, group.parked, group.label) == (
        PAY,
        "GatewayUnavailable (503)",
        3,
        "3 parked: GatewayUnavailable (503)",
    )
    [row] = [s for s in verdict.lists if s.name == PAY]
    assert row.level == "failing"


def test_successful_attempts_after_the_failures_bring_the_list_back(gateway_down, settings):
    for _ in range(2):
        PlacedOrderFactory()
    call_command("process_todos")
    assert process_verdict().level_of(f"list:{PAY}") == Level.FAILING
    settings.INPROCESS_GATEWAY_FAILURE_RATE = 0.0
    result = todo_error_group_act(
        list_name=PAY, kind="GatewayUnavailable (503)", action="retry", reason="gateway back", actor="ops"
    )
    assert len(result.recorded) == 2
    for _ in range(8):
        PlacedOrderFactory()
    call_command("process_todos")
    assert process_verdict().level == Level.OK  # the last 10 attempts: 10 done


def test_group_actions_record_one_event_per_item_with_actor_and_reason(gateway_down, settings):
    for _ in range(2):
        PlacedOrderFactory()
    call_command("process_todos")
    settings.INPROCESS_GATEWAY_FAILURE_RATE = 0.0  # the gateway can tell again whether it charged
    with pytest.raises(ValueError, match="a reason is required"):
        todo_error_group_act(
            list_name=PAY, kind="GatewayUnavailable (503)", action="retry", reason=" ", actor="o"
        )
    result = todo_error_group_act(
        list_name=PAY, kind="GatewayUnavailable (503)", action="give_up", reason="gateway gone", actor="ops"
    )
    assert len(result.recorded) == 2 and not result.refused
    given_up = Event.objects.filter(type="PaymentFailed", actor="ops")
    assert [e.data["decline_code"] for e in given_up] == ["given_up"] * 2
    assert all("(gateway gone)" in e.data["message"] for e in given_up)
    # Nothing left to act on: a second give up finds no parked item of the group.
    call_command("process_todos")
    again = todo_error_group_act(
        list_name=PAY, kind="GatewayUnavailable (503)", action="give_up", reason="again", actor="ops"
    )
    assert again.recorded == [] and again.refused == []


def test_park_all_parks_the_retrying_items_of_the_group(no_nudge, settings):
    settings.TODO_MAX_ATTEMPTS, settings.TODO_BACKOFF_SECONDS = 5, 60
    settings.INPROCESS_GATEWAY_FAILURE_RATE = 1.0
    PlacedOrderFactory()
    call_command("process_todos")
    [group] = process_verdict().error_groups
    assert (group.parked, group.retrying) == (0, 1)
    result = todo_error_group_act(
        list_name=PAY, kind=group.kind, action="park", reason="known outage", actor="ops"
    )
    assert len(result.recorded) == 1
    projections_catch_up()
    parked = Event.objects.get(type="TodoItemParked", actor="ops")
    assert parked.data["reason"] == "known outage"
    assert TodoItem.objects.get(list_name=PAY).status == "parked"


def test_the_dashboard_runs_group_actions_with_a_reason_and_refuses_without_permission(
    admin_client, client, django_user_model, gateway_down
):
    PlacedOrderFactory()
    call_command("process_todos")
    page = admin_client.get(reverse("admin:index")).content.decode()
    assert "1 parked: GatewayUnavailable (503)" in page and "Give up on all" in page and "Retry all" in page
    form = {"list_name": PAY, "kind": "GatewayUnavailable (503)", "action": "retry", "reason": "try again"}
    viewer = django_user_model.objects.create_user("viewer", password="pw-viewer-123", is_staff=True)
    client.force_login(viewer)
    refused = client.post(reverse("admin:todo_error_group_action"), form, follow=True).content.decode()
    assert "Refused: viewer lacks the permission &#x27;todolists.operate_todoitem&#x27;" in refused
    assert not Event.objects.filter(type="TodoRetryRequested").exists()
    done = admin_client.post(reverse("admin:todo_error_group_action"), form, follow=True).content.decode()
    assert "Retry all on payments_to_issue, GatewayUnavailable (503): recorded for 1 item(s)." in done
    assert Event.objects.get(type="TodoRetryRequested").data["reason"] == "try again"
    assert admin_client.get(reverse("admin:todo_error_group_action")).status_code == 405


def test_a_paused_list_is_not_worked_collects_items_and_resumes_and_a_replay_keeps_it(admin_client, no_nudge):
    PlacedOrderFactory()
    page = admin_client.post(
        reverse("admin:todo_list_pause"),
        {"list_name": PAY, "action": "pause", "reason": "gateway flaky"},
        follow=True,
    ).content.decode()
    assert "The list payments_to_issue is paused" in page
    with pytest.raises(PauseRefused, match="already paused"):
        todo_list_pause(list_name=PAY, reason="again", actor="ops")
    PlacedOrderFactory()
    call_command("process_todos")
    assert TodoItem.objects.filter(list_name=PAY, status="open").count() == 2
    assert not Event.objects.filter(type="PaymentStarted").exists()
    verdict = process_verdict()
    [finding] = verdict.findings_of(f"list:{PAY}")
    assert finding.level == Level.ATTENTION
    assert finding.cause == "Payments to issue is paused by admin (gateway flaky); 2 item(s) wait"
    assert "PAUSED" in admin_client.get(reverse("admin:index")).content.decode()
    before = process_snapshot(), list(TodoListPause.objects.values("list_name", "paused", "actor", "reason"))
    call_command("replay_projections")
    assert (
        process_snapshot(),
        list(TodoListPause.objects.values("list_name", "paused", "actor", "reason")),
    ) == before

    todo_list_resume(list_name=PAY, reason="gateway fine", actor="ops")
    call_command("process_todos")
    assert TodoItem.objects.filter(list_name=PAY, status="done").count() == 2
    assert process_verdict().level == Level.OK
    assert [
        (e.type, e.actor, e.data["reason"]) for e in Event.objects.filter(stream_id=f"todo-list-{PAY}")
    ] == [
        ("TodoListPaused", "admin", "gateway flaky"),
        ("TodoListResumed", "ops", "gateway fine"),
    ]


def test_work_waiting_with_no_live_worker_is_failing_naming_the_last_worker(no_nudge, settings):
    settings.TODO_NO_WORKER_AFTER_SECONDS = 0
    assert process_verdict().level == Level.OK  # nothing waits: no worker needed
    WorkerHeartbeat.objects.create(
        worker="host-b:202",
        host="host-b",
        pid=202,
        started_at=timezone.now() - datetime.timedelta(hours=1),
        last_beat_at=timezone.now() - datetime.timedelta(minutes=5),
    )
    PlacedOrderFactory()
    [finding] = process_verdict().findings_of("cluster")
    assert finding.level == Level.FAILING
    assert finding.cause.startswith("no worker is running (the last one, host-b:202, last beat at ")
    assert finding.next_step == "start `manage.py qcluster`"
    worker_heartbeat_beat(worker="host-b:203", started_at=timezone.now())
    assert process_verdict().findings_of("cluster") == []


def test_a_projection_that_does_not_move_is_failing_even_with_nothing_due(no_nudge, settings, live_worker):
    settings.TODO_NOT_MOVING_AFTER_SECONDS = 0
    PlacedOrderFactory()  # appended, read by no one (no cluster, no catch-up)
    verdict = process_verdict()
    [finding] = verdict.findings_of("projection:orders")
    assert finding.level == Level.FAILING
    assert finding.cause.startswith("projection orders has not read ")
    assert finding.cause.endswith(" event(s) for over 0 s: the workers do not keep up or their tasks fail")
    call_command("process_todos")
    assert process_verdict().level == Level.OK


def test_an_expired_lease_names_its_worker_until_taken_over(no_nudge, live_worker):
    PlacedOrderFactory()
    call_command("process_todos", "--list", "orders_to_cancel")  # catches up, works nothing on payments
    TodoItem.objects.filter(list_name=PAY).update(
        claimed_by="host-c:303", claimed_until=timezone.now() - datetime.timedelta(seconds=30)
    )
    [finding] = process_verdict().findings_of(f"list:{PAY}")
    assert finding.level == Level.ATTENTION
    assert (
        finding.cause
        == "Payments to issue: 1 item(s) held by host-c:303, whose lease ran out (the worker died or hangs)"
    )
    call_command("process_todos")
    assert process_verdict().level == Level.OK


def test_an_unreachable_broker_is_attention_with_the_sweep_as_fallback(healthy_process, monkeypatch):
    def down():
        raise ConnectionError("redis down")

    monkeypatch.setattr(django_q.brokers, "get_broker", down)
    verdict = process_verdict()
    [finding] = verdict.findings_of("broker")
    assert verdict.level == Level.ATTENTION
    assert finding.sentence().startswith("the broker does not answer")
    assert "nudges fall back to the minute sweep" in finding.sentence()


@pytest.fixture
def healthy_process(no_nudge, live_worker):
    PlacedOrderFactory()
    call_command("process_todos")


def test_one_skip_passes_every_projection_halted_on_the_event(admin_client, no_nudge, live_worker):
    poison = poison_order_placed(with_case=False)  # no case to park: every projection reading it halts
    PlacedOrderFactory()
    with pytest.raises(CommandError):
        call_command("process_todos")
    halted = sorted(p.name for p in projection_status() if p.halted)
    assert halted == ["orders", "payments", "todo:payments_to_issue"]
    # One bad event, one thing to fix: said once, counting for each projection halted on it.
    verdict = process_verdict()
    [finding] = [f for f in verdict.findings if f"event #{poison.position}" in f.sentence()]
    assert finding.cause.startswith("projections orders, payments and todo:payments_to_issue are halted at")
    assert all(verdict.level_of(f"projection:{name}") == Level.FAILING for name in halted)
    page = admin_client.get(reverse("admin:index")).content.decode()
    assert page.count("Skip this event") == 3
    refused = admin_client.post(reverse("admin:event_skip"), {"position": poison.position}, follow=True)
    assert "Refused: a reason is required" in refused.content.decode()
    admin_client.post(reverse("admin:event_skip"), {"position": poison.position, "reason": "bad import"})
    skips = Event.objects.filter(type="ProjectionEventSkipped", actor="admin")
    assert sorted(e.data["projection"] for e in skips) == halted
    call_command("process_todos")
    assert not any(p.halted for p in projection_status())
    assert process_verdict().level == Level.OK


def test_projection_skip_without_a_name_skips_for_every_halted_projection(no_nudge, capsys):
    poison = poison_order_placed(with_case=False)  # no case to park: every projection reading it halts
    with pytest.raises(CommandError, match="no projection is halted at event #"):
        call_command("projection_skip", "--position", str(poison.position), "--reason", "early")
    with pytest.raises(CommandError):
        call_command("process_todos")
    call_command("projection_skip", "--position", str(poison.position), "--reason", "bad import")
    out = capsys.readouterr().out
    assert out.count(f"skips position {poison.position}; caught up") == 3


def test_the_verdict_runs_a_fixed_number_of_queries(no_nudge, settings, live_worker):
    settings.TODO_MAX_ATTEMPTS, settings.TODO_BACKOFF_SECONDS = 2, 0

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            process_verdict()
        return len(queries)

    empty = count()
    settings.INPROCESS_GATEWAY_FAILURE_RATE = 1.0
    for _ in range(5):
        PlacedOrderFactory()
    call_command("process_todos")
    settings.INPROCESS_GATEWAY_FAILURE_RATE = 0.0
    for _ in range(5):
        PlacedOrderFactory()
        PlacedOrderFactory(declined=True)
    call_command("process_todos")
    todo_list_pause(list_name="orders_to_cancel", reason="r", actor="ops")
    WorkerHeartbeat.objects.create(
        worker="gone:1", host="gone", pid=1, started_at=timezone.now(), last_beat_at=timezone.now()
    )
    PlacedOrderFactory()
    call_command("process_todos", "--list", "orders_to_cancel")
    TodoItem.objects.filter(list_name=PAY, status="open").update(
        claimed_by="gone:1", claimed_until=timezone.now() - datetime.timedelta(seconds=30)
    )
    PlacedOrderFactory()  # unread
    assert count() == empty

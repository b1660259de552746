"""The order-to-payment process worked inline (`process_todos`): outcomes, replay, failures, claims."""

import collections
import datetime
import math
import threading

import pytest
from django.core.management import CommandError, call_command
from django.db.models import Count
from django.utils import timezone

from eventstore.models import Event
from eventstore.projections import projection_replay, projections_catch_up, registry
from eventstore.store import event_append
from orders.errors import Refusal
from orders.models import Order
from payments.commands import Outcome, payment_issue
from payments.events import PaymentIssued
from payments.gateway import GatewayUnavailable
from payments.models import InProcessCharge, Payment
from tests.conftest import NoGateway, ScriptedGateway, process_snapshot, requires_postgres
from todolists.models import TodoItem
from todolists.operator import todo_item_retry
from todolists.runner import todo_list_work
from todolists.ui.status import todo_lists_status

pytestmark = pytest.mark.django_db


def events_of(type_name: str) -> int:
    return Event.objects.filter(type=type_name).count()


def open_items() -> dict[str, int]:
    return {s.name: s.open for s in todo_lists_status()}


def test_process_todos_confirms_paid_orders_and_cancels_declined_ones(place_orders):
    paid, failed = place_orders(visa=50, declined=10)
    call_command("process_todos")

    statuses = dict(Order.objects.values_list("order_id", "status"))
    assert {statuses[o] for o in paid} == {"confirmed"}
    assert {statuses[o] for o in failed} == {"cancelled"}
    assert open_items() == {"payments_to_issue": 0, "orders_to_confirm": 0, "orders_to_cancel": 0}
    issued = Event.objects.filter(type="PaymentIssued").values("correlation_id").annotate(n=Count("pk"))
    assert sorted(r["correlation_id"] for r in issued) == sorted(paid)
    assert {r["n"] for r in issued} == {1}
    charges = InProcessCharge.objects.values("order_id").annotate(n=Count("pk"))
    assert len(charges) == 60 and {r["n"] for r in charges} == {1}
    assert Order.objects.get(order_id=failed[0]).cancel_reason == "payment failed: card_declined"


def test_replay_rebuilds_every_list_and_read_model_without_calling_the_gateway(place_orders, use_gateway):
    place_orders(visa=8, declined=3)
    call_command("process_todos")
    before, events_before = process_snapshot(), Event.objects.count()
    use_gateway(NoGateway())  # replay must never call the payment gateway
    call_command("replay_projections")
    assert process_snapshot() == before
    assert Event.objects.count() == events_before


def test_replay_names_unknown_projection_clearly():
    from django.core.management import CommandError

    with pytest.raises(CommandError, match="Unknown projection 'nope'"):
        call_command("replay_projections", "nope")


def test_transient_failures_back_off_then_park_and_an_operator_retry_pays(place_orders, settings):
    settings.TODO_BACKOFF_SECONDS = 0  # due again at once, so one process_todos run reaches the limit
    settings.TODO_MAX_ATTEMPTS = 3
    settings.INPROCESS_GATEWAY_FAILURE_RATE = 1.0
    [order_id], _ = place_orders(visa=1, declined=0)
    call_command("process_todos")

    item = TodoItem.objects.get(list_name="payments_to_issue", key=order_id)
    assert item.status == "parked"
    assert item.attempts == 3
    assert "503" in item.last_error  # the gateway's own error; the park reason has its column
    assert "gave up after 3 attempts" in item.parked_reason and item.next_attempt_at is None
    assert events_of("TodoAttemptFailed") == 3 and events_of("TodoItemParked") == 1
    assert not InProcessCharge.objects.exists()
    assert Payment.objects.get(order_id=order_id).attempts == 3  # payments reads TodoAttemptFailed
    assert Order.objects.get(order_id=order_id).status == "placed"
    call_command("process_todos")  # parked items stay put
    assert events_of("TodoAttemptFailed") == 3

    settings.INPROCESS_GATEWAY_FAILURE_RATE = 0.0
    todo_item_retry(item=item, actor="operator")
    projections_catch_up()
    assert Payment.objects.get(order_id=order_id).attempts == 0  # a retry starts the count afresh
    call_command("process_todos")
    assert events_of("TodoRetryRequested") == 1
    assert Order.objects.get(order_id=order_id).status == "confirmed"
    assert InProcessCharge.objects.filter(order_id=order_id).count() == 1


def test_a_failed_attempt_waits_for_its_backoff(place_orders, settings):
    settings.TODO_BACKOFF_SECONDS = 300
    settings.INPROCESS_GATEWAY_FAILURE_RATE = 1.0
    place_orders(visa=1, declined=0)
    call_command("process_todos")
    call_command("process_todos")
    assert events_of("TodoAttemptFailed") == 1
    [payments] = [s for s in todo_lists_status() if s.name == "payments_to_issue"]
    assert (payments.open, payments.due, payments.retrying) == (1, 0, 1)


def test_a_lost_response_after_the_charge_is_found_by_the_retry_not_charged_twice(
    place_orders, settings, use_gateway
):
    """Crash window: the gateway charged, but the worker never heard back."""
    settings.TODO_BACKOFF_SECONDS = 0
    calls = []

    def charge_then_lose_the_response(charge, **request):
        result = charge()
        calls.append(request["idempotency_key"])
        if len(calls) == 1:
            raise GatewayUnavailable("read timeout after the charge was made")
        return result

    use_gateway(ScriptedGateway(charge_then_lose_the_response))
    [order_id], _ = place_orders(visa=1, declined=0)
    call_command("process_todos")

    assert len(calls) == 2 and calls[0] == calls[1]  # same idempotency key both times
    assert InProcessCharge.objects.filter(order_id=order_id).count() == 1
    assert events_of("TodoAttemptFailed") == 1 and events_of("PaymentIssued") == 1
    assert Order.objects.get(order_id=order_id).status == "confirmed"


def test_a_lagging_list_never_triggers_a_second_charge(place_orders, use_gateway):
    [order_id], _ = place_orders(visa=1, declined=0)
    # The outcome is in the log, but the list has not caught up with it yet.
    event_append(
        stream_id=f"payment-{order_id}",
        events=[PaymentIssued(order_id=order_id, payment_id="pi_elsewhere", amount="1.00", currency="EUR")],
        expected_version=0,
        correlation_id=order_id,
    )
    use_gateway(NoGateway())  # a decided payment is never charged
    assert payment_issue(order_id=order_id) == Outcome.ALREADY_DECIDED


def test_an_unexpected_error_in_an_automation_is_a_visible_failed_attempt(
    place_orders, use_gateway, settings
):
    settings.TODO_BACKOFF_SECONDS = 300

    def broken(charge, **request):
        raise KeyError("bug in the automation")

    use_gateway(ScriptedGateway(broken))
    [order_id], _ = place_orders(visa=1, declined=0)
    call_command("process_todos")
    item = TodoItem.objects.get(list_name="payments_to_issue", key=order_id)
    assert (item.status, item.attempts) == ("open", 1)
    assert "KeyError" in item.last_error and item.next_attempt_at is not None


def counting_charges(use_gateway) -> collections.Counter:
    """Count gateway calls per idempotency key (idempotency would hide a second call otherwise)."""
    calls: collections.Counter = collections.Counter()

    def charge(charge, **request):
        calls[request["idempotency_key"]] += 1
        return charge()

    use_gateway(ScriptedGateway(charge))
    return calls


@pytest.mark.django_db(transaction=True)
def test_two_workers_never_work_the_same_item(place_orders, run_in_thread, use_gateway):
    """w1 claims a batch and stalls inside its first charge, leases live; w2 then claims and works
    everything it can. Deterministic: w2 must take none of w1's items, whatever the timing."""
    paid, _ = place_orders(visa=12, declined=0)
    projections_catch_up()
    charged_by = collections.defaultdict(list)
    w1_stalled, w2_done = threading.Event(), threading.Event()

    def charge(charge, **request):
        who = threading.current_thread().name
        charged_by[request["idempotency_key"]].append(who)
        if who == "w1" and not w1_stalled.is_set():
            w1_stalled.set()
            assert w2_done.wait(60), "w2 never finished"
        return charge()

    use_gateway(ScriptedGateway(charge, max_concurrency=1))  # charges run in the worker's thread
    worked = {}

    def worker(name):
        threading.current_thread().name = name
        try:
            worked[name] = todo_list_work(list_name="payments_to_issue", batch=3, worker=name).worked
        finally:
            if name == "w2":
                w2_done.set()

    w1 = run_in_thread(lambda: worker("w1"))
    assert w1_stalled.wait(30)
    run_in_thread(lambda: worker("w2")).join(timeout=60)
    w1.join(timeout=60)
    assert worked == {"w1": 3, "w2": 9}
    assert sorted(charged_by) == sorted(f"order-{o}-payment" for o in paid)
    assert {tuple(v) for v in charged_by.values()} == {("w1",), ("w2",)}
    assert events_of("PaymentIssued") == 12


@pytest.mark.django_db(transaction=True)
def test_a_crashed_workers_item_is_taken_over_when_its_lease_runs_out(place_orders, settings, use_gateway):
    [order_id], _ = place_orders(visa=1, declined=0)
    projections_catch_up()
    # A worker claimed the item and died: its lease ran out a second ago.
    TodoItem.objects.filter(key=order_id).update(
        claimed_by="dead-host:1", claimed_until=timezone.now() - datetime.timedelta(seconds=1)
    )
    calls = counting_charges(use_gateway)
    assert todo_list_work(list_name="payments_to_issue", worker="live-host:2").worked == 1
    assert calls == {f"order-{order_id}-payment": 1}


@pytest.mark.django_db(transaction=True)
def test_a_live_lease_keeps_other_workers_off(place_orders):
    [order_id], _ = place_orders(visa=1, declined=0)
    projections_catch_up()
    TodoItem.objects.filter(key=order_id).update(
        claimed_by="busy-host:1", claimed_until=timezone.now() + datetime.timedelta(seconds=60)
    )
    assert todo_list_work(list_name="payments_to_issue", worker="other-host:2").worked == 0
    assert not InProcessCharge.objects.exists()


def test_a_worker_whose_lease_ran_out_does_not_act(place_orders, settings, monkeypatch, use_gateway):
    """Between claim and work the lease expired and another worker took the item: skip it."""
    from todolists import runner

    [order_id], _ = place_orders(visa=1, declined=0)
    real_claim = runner.todo_items_claim

    def claim_then_lose_it(**kwargs):
        items = real_claim(**kwargs)
        TodoItem.objects.filter(key=order_id).update(claimed_by="faster-host:9")
        return items

    monkeypatch.setattr(runner, "todo_items_claim", claim_then_lose_it)
    calls = counting_charges(use_gateway)
    result = todo_list_work(list_name="payments_to_issue", worker="slow-host:1", max_items=1)
    assert result.worked == 0 and not calls


def test_a_halted_list_is_not_worked(place_orders, use_gateway, payments_list_breaks_on_cancel):
    from orders.commands import order_cancel

    [order_id, other], _ = place_orders(visa=2, declined=0)
    projections_catch_up()  # both items are open and due
    order_cancel(order_id=other, reason="changed mind")  # the list halts on this event
    calls = counting_charges(use_gateway)
    result = todo_list_work(list_name="payments_to_issue")
    assert "bug in the list projection" in result.halted
    assert result.worked == 0 and not calls
    assert TodoItem.objects.get(list_name="payments_to_issue", key=order_id).status == "open"
    with pytest.raises(CommandError, match="projections halted: payments_to_issue"):
        call_command("process_todos")
    assert not calls


def test_work_that_records_no_outcome_is_a_failed_attempt_not_a_hot_loop(
    place_orders, work_list_with, settings
):
    settings.TODO_BACKOFF_SECONDS = 300
    # Work that reports each item done yet forgets to record its outcome.
    work_list_with("payments_to_issue", lambda items, *, deadline: {i.key: None for i in items})
    [order_id], _ = place_orders(visa=1, declined=0)
    call_command("process_todos")
    item = TodoItem.objects.get(list_name="payments_to_issue", key=order_id)
    assert (item.status, item.attempts) == ("open", 1)
    assert "NoOutcome" in item.last_error and item.next_attempt_at > timezone.now()


def test_process_todos_rejects_an_unknown_list():
    from django.core.management import CommandError

    with pytest.raises(CommandError, match="Unknown TODO list 'nope'"):
        call_command("process_todos", "--list", "nope")


def test_the_lists_are_registered_projections():
    assert {"todo:payments_to_issue", "todo:orders_to_confirm", "todo:orders_to_cancel"} <= set(
        registry.names()
    )


def test_replay_of_one_list_keeps_its_open_items(place_orders):
    place_orders(visa=3, declined=0)
    call_command("process_todos", "--list", "payments_to_issue")
    projections_catch_up()
    before = process_snapshot()
    projection_replay(name="todo:orders_to_confirm")
    assert process_snapshot() == before
    assert TodoItem.objects.filter(list_name="orders_to_confirm", status="open").count() == 3


def test_an_order_cancelled_while_its_payment_waits_is_never_charged(place_orders, use_gateway):
    from orders.commands import order_cancel

    [order_id], _ = place_orders(visa=1, declined=0)
    order_cancel(order_id=order_id, reason="customer called")
    use_gateway(NoGateway())  # a cancelled order is never charged
    assert payment_issue(order_id=order_id) == Outcome.ORDER_CANCELLED


def test_a_paid_order_cannot_be_cancelled(place_orders):
    from orders.commands import OrderRejected, order_cancel

    [order_id], _ = place_orders(visa=1, declined=0)
    call_command("process_todos", "--list", "payments_to_issue")
    with pytest.raises(OrderRejected) as refused:
        order_cancel(order_id=order_id, reason="too late")
    assert refused.value.code == Refusal.PAID
    assert events_of("OrderCancelled") == 0


def test_an_order_whose_payment_is_in_progress_cannot_be_cancelled(place_orders, settings):
    from orders.commands import OrderRejected, order_cancel

    settings.INPROCESS_GATEWAY_FAILURE_RATE = 1.0  # started, then a transient failure: undecided
    settings.TODO_BACKOFF_SECONDS = 300
    [order_id], _ = place_orders(visa=1, declined=0)
    call_command("process_todos")
    assert events_of("PaymentStarted") == 1 and events_of("TodoAttemptFailed") == 1
    with pytest.raises(OrderRejected) as refused:
        order_cancel(order_id=order_id, reason="impatient")
    assert refused.value.code == Refusal.PAYMENT_IN_PROGRESS
    assert events_of("OrderCancelled") == 0


def test_a_cancellation_racing_the_charge_is_refused(place_orders, use_gateway):
    """The operator clicks "cancel" while the gateway is charging: the charge wins, nothing is lost."""
    from orders.commands import OrderRejected, order_cancel

    [order_id], _ = place_orders(visa=1, declined=0)
    refused = []

    def charge_while_operator_cancels(charge, **request):
        try:
            order_cancel(order_id=order_id, reason="operator, mid-charge")
        except OrderRejected as exc:
            refused.append(exc.code)
        return charge()

    use_gateway(ScriptedGateway(charge_while_operator_cancels))
    call_command("process_todos")
    assert refused == [Refusal.PAYMENT_IN_PROGRESS]
    assert Order.objects.get(order_id=order_id).status == "confirmed"
    assert open_items() == {"payments_to_issue": 0, "orders_to_confirm": 0, "orders_to_cancel": 0}


def test_an_order_cancelled_before_its_payment_starts_is_never_charged(place_orders, use_gateway):
    from orders.commands import order_cancel

    [order_id], _ = place_orders(visa=1, declined=0)
    order_cancel(order_id=order_id, reason="customer called")
    calls = counting_charges(use_gateway)
    call_command("process_todos")
    assert not calls and events_of("PaymentStarted") == 0
    item = TodoItem.objects.get(list_name="payments_to_issue", key=order_id)
    assert (item.status, item.closed_by) == ("done", "OrderCancelled")


@requires_postgres("SQLite holds its one write lock for a whole replay, so workers wait; see README")
@pytest.mark.django_db(transaction=True)
def test_replay_while_workers_run_changes_nothing_and_charges_once(place_orders, run_in_thread, use_gateway):
    paid, failed = place_orders(visa=40, declined=10)
    calls = counting_charges(use_gateway)
    done = threading.Event()

    def worker():
        try:
            while todo_lists_work_once():
                pass
        finally:
            done.set()

    run_in_thread(worker)
    replays = 0
    while not done.is_set() or replays == 0:
        for name in registry.names():
            assert not projection_replay(name=name).error
        replays += 1
    call_command("process_todos")
    before = process_snapshot()
    for name in registry.names():
        projection_replay(name=name)
    assert process_snapshot() == before
    assert set(calls.values()) == {1} and len(calls) == 50
    statuses = dict(Order.objects.values_list("order_id", "status"))
    assert {statuses[o] for o in paid} == {"confirmed"} and {statuses[o] for o in failed} == {"cancelled"}


def todo_lists_work_once() -> int:
    from todolists.runner import todo_lists_work

    return sum(r.worked for r in todo_lists_work(rounds=1))


def test_order_automations_accept_an_outcome_already_recorded_and_refuse_a_contradiction(place_orders):
    from orders.commands import OrderNotOpen
    from orders.todo import cancel_unpaid_orders, confirm_paid_orders

    [order_id], _ = place_orders(visa=1, declined=0)
    call_command("process_todos", "--list", "payments_to_issue")
    projections_catch_up()
    item = TodoItem.objects.get(list_name="orders_to_confirm", key=order_id)
    assert confirm_paid_orders([item], deadline=math.inf) == {order_id: None}
    # A lagging list asks again: nothing to do, no error.
    assert confirm_paid_orders([item], deadline=math.inf) == {order_id: None}
    assert events_of("OrderConfirmed") == 1
    # Cancelling a confirmed order contradicts the log: a failed attempt, parked in view.
    failed = {"order_id": order_id, "decline_code": "card_declined", "message": "declined"}
    item = TodoItem(list_name="orders_to_cancel", key=order_id, payload=failed)
    refused = cancel_unpaid_orders([item], deadline=math.inf)[order_id]
    assert isinstance(refused, OrderNotOpen)
    assert (refused.code, refused.state) == (Refusal.NOT_OPEN, Order.Status.CONFIRMED)
    assert events_of("OrderCancelled") == 0

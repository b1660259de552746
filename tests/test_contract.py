"""The event contract: nothing malformed gets in, what is in can be passed over by an operator's
recorded skip, names are checked, and every append that opens a list nudges the cluster."""

import decimal
import json
import uuid

import pytest
from django.core import checks
from django.core.management import CommandError, call_command
from django.utils import timezone

from eventstore.events import InvalidEvent
from eventstore.models import Event
from eventstore.parked_cases import parked_cases_list
from eventstore.projections import projection_status, registry, unregistered_events
from eventstore.store import event_append
from orders.commands import OrderRejected, order_confirm, order_place
from orders.errors import Refusal
from orders.events import OrderPlaced
from orders.models import Order
from payments.events import PaymentIssued
from payments.models import InProcessCharge
from tests.conftest import process_snapshot
from tests.factories import PARKS_ON_ORDER_PLACED, poison_order_placed
from todolists.lists import TodoList
from todolists.lists import registry as todo_lists
from todolists.models import TodoItem

pytestmark = pytest.mark.django_db

VALID = {
    "order_id": "0b0f6d1e-8a4c-4b1e-9a3f-1c2d3e4f5a6b",
    "customer": "ada",
    "amount": decimal.Decimal("12.50"),
    "currency": "EUR",
    "payment_method": "pm_card_visa",
}


@pytest.mark.parametrize(
    ("field", "bad"),
    [("amount", "abc"), ("customer", 42), ("currency", None), ("payment_method", ["pm"])],
)
def test_append_refuses_an_event_that_does_not_match_its_type_and_writes_nothing(field, bad):
    with pytest.raises(InvalidEvent, match=rf"OrderPlaced is invalid: .*\$\.{field}"):
        event_append(stream_id="order-x", events=[OrderPlaced(**{**VALID, field: bad})], expected_version=0)
    assert not Event.objects.exists()


def test_an_invalid_event_in_a_batch_refuses_the_whole_append():
    good, bad = OrderPlaced(**VALID), OrderPlaced(**{**VALID, "amount": "x"})
    with pytest.raises(InvalidEvent):
        event_append(stream_id="order-x", events=[good, bad], expected_version=0)
    assert not Event.objects.exists()


def test_the_gateways_smallest_charge_is_refused_at_placement_by_payments_rule(no_nudge):
    with pytest.raises(OrderRejected) as refused:
        order_place(amount="0.29", currency="GBP")
    assert refused.value.code == Refusal.UNCHARGEABLE
    assert not Event.objects.exists()


@pytest.mark.parametrize(
    "data",
    [
        {"customer": "ada", "currency": "EUR", "payment_method": "pm_card_visa"},  # no amount
        {**{k: str(v) for k, v in VALID.items() if k != "order_id"}, "coupon": "FREE"},  # unknown field
    ],
    ids=["missing-field", "unknown-field"],
)
def test_a_poison_event_parks_its_order_is_never_charged_and_a_recorded_skip_resolves_it(
    data, place_orders, capsys
):
    poison = poison_order_placed(data)
    [paid], _ = place_orders(visa=1, declined=0)

    call_command("process_todos")
    assert Order.objects.get(order_id=paid).status == "confirmed"  # the other order goes on
    assert not any(s.halted for s in projection_status())
    parked = {s.name: s.parked for s in projection_status() if s.parked}
    assert parked == dict.fromkeys(PARKS_ON_ORDER_PLACED, 1)
    capsys.readouterr()
    call_command("parked_cases", "--json")
    [case] = json.loads(capsys.readouterr().out)
    assert (case["correlation_id"], case["position"]) == (poison.correlation_id, poison.position)
    assert "InvalidEvent" in case["error"]
    assert not Event.objects.filter(type="PaymentStarted", correlation_id=poison.correlation_id).exists()

    with pytest.raises(CommandError, match="is not parked"):
        call_command("parked_case_skip", str(uuid.uuid4()), "--reason", "r")
    call_command("parked_case_skip", poison.correlation_id, "--reason", "bad import")
    with pytest.raises(CommandError, match="is not parked"):
        call_command("parked_case_skip", poison.correlation_id, "--reason", "again")
    call_command("process_todos")

    assert not Order.objects.filter(order_id=poison.correlation_id).exists()
    assert not TodoItem.objects.filter(key=poison.correlation_id).exists()
    assert not InProcessCharge.objects.filter(order_id=poison.correlation_id).exists()
    assert {s.name: s.skipped for s in projection_status()} == {
        **{s.name: 0 for s in projection_status()},
        **dict.fromkeys(PARKS_ON_ORDER_PLACED, 1),
    }
    # The skip is one event of that order's story, and a replay repeats it.
    [skip] = Event.objects.filter(type="ParkedEventSkipped", correlation_id=poison.correlation_id)
    assert skip.data["projections"] == PARKS_ON_ORDER_PLACED
    before = process_snapshot()
    call_command("replay_projections")
    assert process_snapshot() == before
    assert not any(s.halted or s.parked for s in projection_status())


def test_a_list_leaves_alone_a_business_case_another_projection_has_parked(
    place_orders, projection_broken_for
):
    [stuck, fine], _ = place_orders(visa=2, declined=0)
    projection_broken_for("payments", stuck)
    call_command("process_todos")
    assert Order.objects.get(order_id=fine).status == "confirmed"
    assert not Event.objects.filter(correlation_id=stuck, type="PaymentStarted").exists()
    assert not InProcessCharge.objects.filter(order_id=stuck).exists()
    assert [(c.correlation_id, c.projections) for c in parked_cases_list()] == [(stuck, ["payments"])]


def test_events_of_an_unregistered_type_are_counted_and_reported(capsys):
    Event.objects.create(
        stream_id="x", stream_version=1, type="NoSuchType", data={}, recorded_at=timezone.now()
    )
    assert unregistered_events() == {"NoSuchType": 1}
    call_command("projection_status")
    assert "NoSuchType" in capsys.readouterr().out


def test_a_misspelt_event_type_fails_the_system_checks():
    todo_lists.register(
        TodoList(
            name="test_misspelt",
            title="Misspelt",
            opened_by=("OrderPlacd",),
            closed_by=("OrderCancelled",),
            work=lambda item: None,
            key_field="order_id",
        )
    )
    try:
        ids = {m.id for m in checks.run_checks()}
    finally:
        todo_lists.unregister("test_misspelt")
    assert {"todolists.E001", "eventstore.E001"} <= ids
    assert not [m for m in checks.run_checks() if "test_misspelt" in m.msg]


def test_a_registered_type_that_no_projection_handles_fails_the_system_checks(monkeypatch):
    monkeypatch.delitem(registry._items, "payments")  # the only reader of PaymentStarted
    messages = [m for m in checks.run_checks() if m.id == "eventstore.E002"]
    assert ["PaymentStarted" in m.msg for m in messages] == [True]


def test_any_append_that_opens_a_list_nudges_the_cluster_even_order_confirm(
    use_broker, settings, monkeypatch, django_capture_on_commit_callbacks
):
    settings.TODO_NUDGE = True
    nudged: list[list[str]] = []
    use_broker(lambda fn, names, **kw: nudged.append(names))
    todo_lists.register(
        TodoList(
            name="test_thank_yous",
            title="Thank-you notes to send",
            opened_by=("OrderConfirmed",),
            closed_by=("OrderCancelled",),
            work=lambda item: None,
            key_field="order_id",
        )
    )
    try:
        with django_capture_on_commit_callbacks(execute=True):
            order_id = order_place(amount="10", currency="EUR")
        event_append(
            stream_id=f"payment-{order_id}",
            events=[
                PaymentIssued(
                    order_id=order_id, payment_id="pi_1", amount=decimal.Decimal(10), currency="EUR"
                )
            ],
            expected_version=None,
            correlation_id=order_id,
        )
        nudged.clear()
        with django_capture_on_commit_callbacks(execute=True):
            order_confirm(order_id=order_id)
    finally:
        todo_lists.unregister("test_thank_yous")
    assert nudged == [["test_thank_yous"]]

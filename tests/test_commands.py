"""Management commands: output, one-line errors, non-zero exit, and no event appended on bad input."""

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from eventstore.models import Event
from orders.commands import OrderRejected, order_cancel, order_confirm, order_place
from orders.errors import Refusal

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parent.parent


def test_place_order_prints_the_new_order_id(capsys, no_nudge):
    call_command("place_order", "--amount", "12.50", "--currency", "eur", "--customer", "ada")
    order_id = capsys.readouterr().out.strip()
    assert str(uuid.UUID(order_id)) == order_id
    [event] = Event.objects.all()
    assert (event.type, event.stream_id, event.data["amount"], event.data["currency"]) == (
        "OrderPlaced",
        f"order-{order_id}",
        "12.50",
        "EUR",
    )
    assert event.data["customer"] == "ada" and event.data["payment_method"] == "pm_card_visa"


def test_place_order_json(capsys, no_nudge):
    call_command("place_order", "--amount", "1", "--currency", "USD", "--json")
    assert uuid.UUID(json.loads(capsys.readouterr().out)["order_id"])


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["--amount", "abc", "--currency", "EUR"], "is not a number"),
        (["--amount", "0", "--currency", "EUR"], "must be positive"),
        (["--amount", "-5", "--currency", "EUR"], "must be positive"),
        (["--amount", "NaN", "--currency", "EUR"], "must be positive"),
        (["--amount", "Infinity", "--currency", "EUR"], "must be positive"),
        (["--amount", "1.001", "--currency", "EUR"], "more than 2 decimal places"),
        (["--amount", "1000000", "--currency", "EUR"], "above the limit"),
        (["--amount", "10", "--currency", "XYZ"], "currency 'XYZ' is not supported"),
        (["--amount", "10", "--currency", "JPY"], "currency 'JPY' is not supported"),
        (["--amount", "0.49", "--currency", "EUR"], "below the smallest charge of 0.50"),
        (["--amount", "2.99", "--currency", "NOK"], "below the smallest charge of 3.00"),
        (["--amount", "10", "--currency", "EUR", "--customer", "  "], "customer must be"),
        (["--amount", "10", "--currency", "EUR", "--customer", "x" * 201], "customer must be"),
        (["--amount", "10", "--currency", "EUR", "--payment-method", "visa"], "is not a payment method id"),
        (["--amount", "10", "--currency", "EUR", "--order-id", "42"], "is not a UUID"),
        # Issue 8's bad inputs, each once accepted.
        (
            ["--amount", "10", "--currency", "EUR", "--payment-method", "pm_card_visa\n"],
            "payment method must not",
        ),
        (["--amount", "\u0661\u0662", "--currency", "EUR"], "not a number written as ASCII digits"),
        (["--amount", "1_000", "--currency", "EUR"], "not a number written as ASCII digits"),
        (["--amount", "1e2", "--currency", "EUR"], "not a number written as ASCII digits"),
        (["--amount", "10", "--currency", "EUR", "--order-id", ""], "order id must not be empty"),
        (
            ["--amount", "10", "--currency", "EUR", "--customer", "ada\x00"],
            "customer must not contain control",
        ),
        # ... and their neighbours.
        (["--amount", "+12", "--currency", "EUR"], "not a number written as ASCII digits"),
        (["--amount", "1 000", "--currency", "EUR"], "not a number written as ASCII digits"),
        (["--amount", "12.", "--currency", "EUR"], "not a number written as ASCII digits"),
        (["--amount", "12\n", "--currency", "EUR"], "amount must not contain control"),
        (["--amount", "10", "--currency", "EUR\x00"], "currency must not contain control"),
        (["--amount", "10", "--currency", "\u017fek"], "currency '\u017fek' is not supported"),
        (["--amount", "10", "--currency", "EUR", "--customer", "ada\u202e"], "customer must not contain"),
        (["--amount", "10", "--currency", "EUR", "--customer", "ada\udcff"], "customer must not contain"),
        (
            ["--amount", "10", "--currency", "EUR", "--payment-method", "pm_card\x00"],
            "payment method must not",
        ),
        (["--amount", "10", "--currency", "EUR", "--order-id", f"{uuid.uuid4()}\n"], "order id must not"),
        (["--amount", "10", "--currency", "EUR", "--order-id", f"urn:uuid:{uuid.uuid4()}"], "is not a UUID"),
        (["--amount", "10", "--currency", "EUR", "--order-id", "\u0661" * 32], "is not a UUID"),
    ],
)
def test_place_order_rejects_bad_input_with_a_reason_and_appends_nothing(args, reason, no_nudge):
    with pytest.raises(CommandError, match=reason):
        call_command("place_order", *args)
    assert not Event.objects.exists()


def test_placing_the_same_order_id_twice_is_refused(no_nudge):
    order_id = str(uuid.uuid4())
    order_place(amount="5", currency="EUR", order_id=order_id)
    with pytest.raises(CommandError, match="already been placed"):
        call_command("place_order", "--amount", "5", "--currency", "EUR", "--order-id", order_id)
    assert Event.objects.count() == 1


def test_confirm_needs_a_paid_open_order_and_cancel_an_open_one(no_nudge):
    with pytest.raises(OrderRejected) as refused:
        order_confirm(order_id=str(uuid.uuid4()))
    assert refused.value.code == Refusal.NOT_FOUND
    order_id = order_place(amount="5", currency="EUR")
    with pytest.raises(OrderRejected) as refused:
        order_confirm(order_id=order_id)
    assert refused.value.code == Refusal.NOT_PAID
    order_cancel(order_id=order_id, reason="customer changed their mind")
    with pytest.raises(OrderRejected) as refused:
        order_cancel(order_id=order_id, reason="again")
    assert refused.value.code == Refusal.NOT_OPEN
    with pytest.raises(OrderRejected) as refused:
        order_confirm(order_id=order_id)
    assert refused.value.code == Refusal.NOT_OPEN
    assert list(Event.objects.values_list("type", flat=True)) == ["OrderPlaced", "OrderCancelled"]


@pytest.mark.parametrize(
    ("command", "args", "reason"),
    [
        ("simulate", ["--orders", "0"], "--orders must be between 1 and 10000"),
        ("simulate", ["--orders", "5", "--decline-rate", "1.5"], "--decline-rate must be between 0 and 1"),
        ("replay_projections", ["--batch-size", "0"], "--batch-size must be a positive integer"),
        ("replay_projections", ["nope"], "Unknown projection 'nope'"),
        ("process_todos", ["--list", "nope"], "Unknown TODO list 'nope'"),
    ],
)
def test_other_commands_reject_bad_input(command, args, reason):
    with pytest.raises(CommandError, match=reason):
        call_command(command, *args)
    assert not Event.objects.exists()


def test_simulate_places_orders_with_declines(no_nudge):
    call_command("simulate", "--orders", "20", "--decline-rate", "0.5", "--seed", "3")
    methods = [e.data["payment_method"] for e in Event.objects.filter(type="OrderPlaced")]
    assert len(methods) == 20
    assert 0 < methods.count("pm_card_chargeCustomerFail") < 20


def test_todo_status_json_reports_every_list(capsys, no_nudge):
    order_place(amount="5", currency="EUR")
    call_command("process_todos", "--list", "orders_to_cancel")  # catches up, works nothing on payments
    capsys.readouterr()
    call_command("todo_status", "--json")
    rows = json.loads(capsys.readouterr().out)["lists"]
    assert set(rows) == {"payments_to_issue", "orders_to_confirm", "orders_to_cancel"}
    assert rows["payments_to_issue"]["open"] == 1 and rows["payments_to_issue"]["due"] == 1
    assert rows["payments_to_issue"]["oldest_open_age_seconds"] >= 0


def test_a_bad_option_exits_non_zero_with_one_line_and_no_traceback():
    """As a user runs it: a real process, its exit code and what it prints."""
    result = subprocess.run(
        [sys.executable, "manage.py", "place_order", "--amount", "-1", "--currency", "EUR"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "DATABASE_URL": "sqlite:////nonexistent/never-opened.sqlite3"},
    )
    assert result.returncode == 1
    assert result.stderr.strip() == "CommandError: amount must be positive, got -1"
    assert "Traceback" not in result.stderr


@pytest.mark.django_db(transaction=True)
def test_a_broker_that_is_down_never_fails_a_command(use_broker, settings, monkeypatch, caplog):
    """The nudge is best effort: the obligation is on the list, and the schedule sweeps it."""
    settings.TODO_NUDGE = True

    def broker_down(*args, **kwargs):
        raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    use_broker(broker_down)
    order_id = order_place(amount="5", currency="EUR")
    assert Event.objects.filter(correlation_id=order_id, type="OrderPlaced").count() == 1
    assert "could not enqueue a nudge" in caplog.text
    call_command("process_todos")
    from orders.models import Order

    assert Order.objects.get(order_id=order_id).status == "confirmed"


def test_demo_refuses_to_serve_without_debug(settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="run it with DEBUG=1"):
        call_command("demo")

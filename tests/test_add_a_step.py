"""A new step is only a declaration: this module declares "receipts to send", opened by
OrderConfirmed and closed by ReceiptSent, which its automation records. Nothing under orders/ or
payments/ knows about it. The real qcluster loads it as an app (EXTRA_APPS, tests/apps.py)."""

import contextlib
from collections.abc import Sequence

import pytest

from eventstore.events import DomainEvent, event_type
from eventstore.models import Event
from eventstore.store import ConcurrencyError, event_append
from todolists.lists import TodoList
from todolists.lists import registry as todo_lists
from todolists.models import TodoItem
from todolists.runner import todo_items_each


class ReceiptSent(DomainEvent):
    order_id: str


def send_receipt(item: TodoItem) -> None:
    """E-mail the receipt (here: nothing to send) and record that it was sent."""
    with contextlib.suppress(ConcurrencyError):  # sent already: the list closes when it catches up
        event_append(
            stream_id=f"receipt-{item.key}",
            events=[ReceiptSent(order_id=item.key)],
            expected_version=0,
            correlation_id=item.correlation_id,
            actor="automation",
        )


def send_receipts(items: Sequence[TodoItem], *, deadline: float) -> dict[str, Exception | None]:
    """The automation, called with a claimed batch: each item on its own, each failure recorded."""
    return todo_items_each(items=items, act=send_receipt, deadline=deadline)


receipts_to_send = TodoList(
    name="receipts_to_send",
    title="Receipts to send",
    opened_by=("OrderConfirmed",),
    closed_by=("ReceiptSent",),
    work=send_receipts,
    key_field="order_id",
)


def declare() -> None:
    event_type("ReceiptSent")(ReceiptSent)
    todo_lists.register(receipts_to_send)


@pytest.fixture
def receipts_step(scoped_event_types):
    """The step declared in this process too, and undeclared afterwards."""
    declare()
    yield receipts_to_send
    todo_lists.unregister(receipts_to_send.name)


def receipts_sent() -> int:
    return Event.objects.filter(type="ReceiptSent").count()


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_a_step_declared_outside_orders_and_payments_runs_on_a_real_cluster_and_survives_a_replay(
    receipts_step, start_qcluster, wait_until, settings, admin_client
):
    from django.core import checks
    from django.core.management import call_command
    from django.urls import reverse
    from django_q.models import Schedule

    from tests.conftest import process_snapshot
    from tests.factories import PlacedOrderFactory

    assert not [m for m in checks.run_checks() if m.is_serious()]
    Schedule.objects.all().delete()  # no sweep: only the nudges after each append can drive the work
    settings.TODO_NUDGE = True
    start_qcluster(EXTRA_APPS="tests.apps.ReceiptsStepConfig")
    orders = [PlacedOrderFactory() for _ in range(3)]

    wait_until(lambda: receipts_sent() == 3, timeout=60, message="three receipts sent by the cluster")
    call_command("process_todos")  # catches this process's lists up; nothing is left to work
    items = TodoItem.objects.filter(list_name="receipts_to_send")
    assert sorted(items.values_list("key", flat=True)) == sorted(orders)
    assert set(items.values_list("status", "closed_by")) == {("done", "ReceiptSent")}
    assert receipts_sent() == 3

    # Drawn on the process map, from the same declarations.
    process_map = admin_client.get(reverse("admin:process_map")).content.decode()
    assert 'data-list="receipts_to_send"' in process_map and "ReceiptSent" in process_map

    before, events_before = process_snapshot(), Event.objects.count()
    call_command("replay_projections")
    assert process_snapshot() == before
    assert Event.objects.count() == events_before  # a replay records nothing


@pytest.mark.django_db(transaction=True)
def test_todo_dry_run_shows_what_the_undeployed_receipts_list_would_hold_and_writes_nothing(place_orders):
    import io

    from django.core.management import call_command

    from eventstore.models import ProjectionCheckpoint
    from orders.models import Order
    from tests.conftest import process_snapshot

    place_orders(visa=4, declined=2)
    call_command("process_todos")
    confirmed = list(Order.objects.filter(status=Order.Status.CONFIRMED).values_list("order_id", flat=True))
    assert len(confirmed) == 4 and "receipts_to_send" not in todo_lists.names()
    before = (process_snapshot(), Event.objects.count(), list(ProjectionCheckpoint.objects.values_list()))

    out = io.StringIO()
    call_command("todo_dry_run", "tests.test_add_a_step:receipts_to_send", stdout=out)

    printed = out.getvalue()
    assert "open: 4 (due now: 4), parked: 0, done: 0" in printed
    assert "waiting, by age: < 1 hour: 4, < 1 day: 0, < 7 days: 0, older than 7 days: 0" in printed
    assert sorted(printed.split("oldest keys: ")[1].strip().split(", ")) == sorted(confirmed)
    assert (
        process_snapshot(),
        Event.objects.count(),
        list(ProjectionCheckpoint.objects.values_list()),
    ) == before
    assert receipts_sent() == 0  # no automation ran


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path, reason",
    [
        ("tests.test_add_a_step", "is not of the form"),
        ("tests.no_such_module:receipts_to_send", "cannot import 'tests.no_such_module'"),
        ("tests.test_add_a_step:no_such_list", "has no attribute 'no_such_list'"),
        ("tests.test_add_a_step:send_receipt", "is a function, not a TodoList"),
    ],
)
def test_todo_dry_run_refuses_what_is_not_a_list(path, reason):
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match=reason):
        call_command("todo_dry_run", path)

"""A replay shows what it would change before it swaps: `replay_projections --check` compares the
rebuild with the live rows, and a rebuild that differs too much is not swapped unless accepted."""

import dataclasses

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from eventstore.events import registered_types
from eventstore.models import Event
from eventstore.projections import projections_catch_up, row_projection
from eventstore.projections import registry as projections
from orders import projections as order_projections
from orders.events import OrderCancelled, OrderConfirmed, OrderPlaced
from orders.models import Order
from tests.conftest import process_snapshot

pytestmark = pytest.mark.django_db(transaction=True)


def _orders_with(monkeypatch, **handlers):
    """The orders read model with some handlers replaced (a deploy that changed them)."""
    live = projections.get("orders")
    changed = row_projection(
        name="orders",
        title=live.title,
        model=Order,
        key_field="order_id",
        key=lambda e: e.event.order_id,
        handlers={
            OrderPlaced: order_projections.on_placed,
            OrderConfirmed: order_projections.on_confirmed,
            OrderCancelled: order_projections.on_cancelled,
            **{registered_types()[name]: handler for name, handler in handlers.items()},
        },
    )
    monkeypatch.setitem(projections._items, "orders", dataclasses.replace(live, apply=changed.apply))


def _check(*names) -> tuple[int, str]:
    import io

    out = io.StringIO()
    try:
        call_command("replay_projections", *names, "--check", stdout=out)
    except CommandError as exc:
        return 1, out.getvalue() + str(exc)
    return 0, out.getvalue()


def test_two_replays_of_the_same_log_give_identical_rows_and_check_finds_nothing(seeded_process):
    before, events = process_snapshot(), Event.objects.count()

    code, out = _check()
    assert code == 0, out
    assert "the rebuild equals the live rows" in out
    assert process_snapshot() == before

    call_command("replay_projections")
    first = process_snapshot()
    call_command("replay_projections")
    assert process_snapshot() == first == before
    assert Event.objects.count() == events  # nothing changed, so nothing is recorded


def test_check_exits_1_with_the_differing_keys_after_a_handler_change_and_swaps_nothing(
    seeded_process, monkeypatch
):
    before, events = process_snapshot(), Event.objects.count()

    def cancelled_without_reason(row, e):
        changed = order_projections.on_cancelled(row, e)
        return changed and {**changed, "cancel_reason": "(changed)"}

    _orders_with(monkeypatch, OrderCancelled=cancelled_without_reason)
    code, out = _check("orders")

    assert code == 1
    assert "orders: 1 rows differ (0 added, 0 removed, 1 changed)" in out
    assert f"changed  orders_order [{seeded_process['cancelled']}] (cancel_reason)" in out
    assert process_snapshot() == before  # nothing swapped
    assert Event.objects.count() == events  # nothing recorded


def test_check_catches_a_handler_that_reads_the_clock(seeded_process, monkeypatch):
    def placed_now(row, e):
        return {**order_projections.on_placed(row, e), "placed_at": timezone.now()}

    _orders_with(monkeypatch, OrderPlaced=placed_now)
    code, out = _check("orders")

    assert code == 1
    assert f"{len(seeded_process)} changed" in out
    for order_id in seeded_process.values():
        assert f"changed  orders_order [{order_id}] (placed_at)" in out


def test_check_reports_added_and_removed_rows(seeded_process):
    Order.objects.filter(order_id=seeded_process["cancelled"]).delete()  # as if never projected
    Order.objects.create(
        order_id="ghost",
        customer="x",
        amount=1,
        currency="eur",
        payment_method="pm_card_visa",
        placed_at=timezone.now(),
    )
    code, out = _check("orders")
    assert code == 1
    assert f"added    orders_order [{seeded_process['cancelled']}]" in out
    assert "removed  orders_order [ghost]" in out


def test_a_rebuild_differing_beyond_the_threshold_is_refused_until_accepted_and_recorded(
    seeded_process, monkeypatch, settings
):
    settings.EVENTSTORE_REPLAY_MAX_DIFFERENCES = 2
    before = process_snapshot()

    def placed_elsewhere(row, e):
        return {**order_projections.on_placed(row, e), "customer": "someone else"}

    _orders_with(monkeypatch, OrderPlaced=placed_elsewhere)
    with pytest.raises(CommandError, match=r"differs from the live rows in 5 rows .*nothing was swapped"):
        call_command("replay_projections", "orders")
    assert process_snapshot() == before
    assert not Event.objects.filter(type="ProjectionRebuilt").exists()

    call_command("replay_projections", "orders", "--accept-differences", "--actor", "ops:ann")
    assert set(Order.objects.values_list("customer", flat=True)) == {"someone else"}
    recorded = Event.objects.get(type="ProjectionRebuilt")
    assert recorded.actor == "ops:ann"
    assert recorded.data["projection"] == "orders"
    assert (recorded.data["changed"], recorded.data["added"], recorded.data["removed"]) == (5, 0, 0)
    assert recorded.data["accepted"] is True
    assert any(seeded_process["parked"] in line for line in recorded.data["sample"])


def test_a_rebuild_within_the_threshold_is_swapped_and_recorded(seeded_process, monkeypatch, settings):
    settings.EVENTSTORE_REPLAY_MAX_DIFFERENCES = 2

    def cancelled_without_reason(row, e):
        changed = order_projections.on_cancelled(row, e)
        return changed and {**changed, "cancel_reason": "(changed)"}

    _orders_with(monkeypatch, OrderCancelled=cancelled_without_reason)
    call_command("replay_projections", "orders")
    assert Order.objects.get(order_id=seeded_process["cancelled"]).cancel_reason == "(changed)"
    recorded = Event.objects.get(type="ProjectionRebuilt")
    assert (recorded.data["changed"], recorded.data["accepted"]) == (1, False)


def test_check_compares_after_the_same_events_when_the_live_projection_lags(seeded_process, no_nudge):
    from eventstore.models import ProjectionCheckpoint
    from tests.factories import PlacedOrderFactory

    lagging = ProjectionCheckpoint.objects.get(name="orders").position
    PlacedOrderFactory()  # appended; the live orders projection has not applied it yet
    assert ProjectionCheckpoint.objects.get(name="orders").position == lagging
    code, out = _check("orders")
    assert code == 0, out
    projections_catch_up()

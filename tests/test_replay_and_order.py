"""Found in review of the event store core: each test fails without its fix."""

import decimal
import threading
import uuid

import pytest
from django.db import connection, transaction

from eventstore.events import DomainEvent, event_type
from eventstore.models import Event
from eventstore.projections import Projection, projection_catch_up, projection_replay, registry
from eventstore.replay import ReplayRefused
from eventstore.store import RecordedEvent, event_append, log_read
from orders.events import OrderPlaced
from payments.events import PaymentIssued
from payments.models import Payment
from tests.conftest import ThingHappened, process_snapshot, requires_postgres

pytestmark = pytest.mark.django_db


def append_order_placed(order_id: str) -> list[RecordedEvent]:
    placed = OrderPlaced(
        order_id=order_id,
        customer="c",
        amount=decimal.Decimal("10.00"),
        currency="EUR",
        payment_method="pm_card_visa",
    )
    return event_append(
        stream_id=f"order-{order_id}", events=[placed], expected_version=0, correlation_id=order_id
    )


def test_two_lists_rebuilt_at_once_each_keep_their_own_rows(place_orders):
    from django.core.management import call_command

    place_orders(visa=4, declined=2)
    call_command("process_todos")
    place_orders(visa=2, declined=0)  # open items too
    call_command("process_todos", "--list", "payments_to_issue")
    before = process_snapshot()
    other: list = []

    def meanwhile(position: int) -> None:
        if not other:  # between two batches of one list's rebuild, another list rebuilds whole
            other.append(projection_replay(name="todo:orders_to_confirm", batch_size=3))

    result = projection_replay(name="todo:payments_to_issue", batch_size=3, progress=meanwhile)
    assert not result.error and not other[0].error
    assert process_snapshot() == before


def test_a_projection_without_declared_tables_is_not_replayed_on_top_of_itself(monkeypatch):
    counted = []
    projection = Projection(name="test_counter", handles=(ThingHappened,), apply=counted.append)
    monkeypatch.setitem(registry._items, projection.name, projection)
    with pytest.raises(ReplayRefused, match="declares no tables"):
        projection_replay(name="test_counter")


@requires_postgres("SQLite does not enforce a column's length")
def test_a_value_too_long_for_its_column_parks_its_case_instead_of_being_cut():
    long_id = "o" * 40  # the Order read model keeps 36 characters
    [placed] = append_order_placed(long_id)
    assert projection_catch_up(name="orders").error == ""
    from eventstore.models import ParkedEvent
    from orders.models import Order

    assert not Order.objects.exists()
    [parked] = ParkedEvent.objects.filter(projection="orders")
    assert parked.position == placed.position and "too long" in parked.error


def test_an_upcaster_that_raises_halts_the_projection_where_it_shows(scoped_event_types, monkeypatch):
    @event_type("TestRenamed", version=2, upcasters={1: lambda data: data["old"].upper()})
    class Renamed(DomainEvent):
        new: str

    Event.objects.create(
        stream_id="r", stream_version=1, type="TestRenamed", schema_version=1, data={"old": None},
        recorded_at="2026-01-01T00:00Z",
    )  # fmt: skip
    projection = Projection(name="test_renamed", handles=(Renamed,), apply=lambda batch: None)
    monkeypatch.setitem(registry._items, projection.name, projection)
    result = projection_catch_up(name="test_renamed")
    assert "AttributeError" in result.error
    from eventstore.projections import projection_status

    [status] = projection_status(name="test_renamed")
    assert status.halted and status.error_type == "TestRenamed"


def test_log_read_after_a_position_starts_after_that_event():
    recorded = [
        event_append(stream_id=f"s-{i}", events=[ThingHappened(n=i)], expected_version=0)[0] for i in range(5)
    ]
    assert [e.position for e in log_read(after=recorded[1].position)] == [e.position for e in recorded[2:]]


@requires_postgres("transaction ids are PostgreSQL's")
@pytest.mark.django_db(transaction=True)
def test_a_business_case_is_read_in_causal_order_across_streams():
    """A transaction that got its id early records a consequence of an event that committed after
    it started: readers still see the cause first, so the payment read model sees the order."""
    order_id = f"o-{uuid.uuid4().hex[:8]}"

    def place():
        append_order_placed(order_id)
        connection.close()

    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_current_xact_id()")  # this transaction has its id already
        placer = threading.Thread(target=place)
        placer.start()
        placer.join()
        event_append(
            stream_id=f"payment-{order_id}",
            events=[
                PaymentIssued(
                    order_id=order_id, payment_id="pi_1", amount=decimal.Decimal("10.00"), currency="EUR"
                )
            ],
            expected_version=None,
            correlation_id=order_id,
        )
    read = [e.type for e in log_read(limit=100) if e.correlation_id == order_id]
    assert read == ["OrderPlaced", "PaymentIssued"]
    projection_catch_up(name="payments")
    assert Payment.objects.get(order_id=order_id).status == "issued"


@requires_postgres("rebuilding in several processes needs a server database")
@pytest.mark.django_db(transaction=True)
def test_replay_in_two_processes_rebuilds_the_same_rows(place_orders):
    from django.core.management import call_command

    place_orders(visa=5, declined=2)
    call_command("process_todos")
    before = process_snapshot()
    call_command("replay_projections", "--jobs", "2")
    assert process_snapshot() == before


def test_replay_jobs_must_be_positive():
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match="--jobs must be a positive integer"):
        call_command("replay_projections", "--jobs", "0")

"""The event log: atomic, guarded appends; typed reads; append-only on PostgreSQL."""

import decimal
import threading

import pytest
from django.db import DatabaseError, connection, transaction

from eventstore.events import DomainEvent, UnknownEventType, event_type
from eventstore.models import Event
from eventstore.record import LogKey
from eventstore.store import (
    Append,
    CaseCheck,
    ConcurrencyError,
    RecordedEvent,
    correlation_read,
    event_append,
    events_append,
    log_read,
    stream_read,
)
from tests.conftest import ThingHappened, requires_postgres

pytestmark = pytest.mark.django_db


def test_append_assigns_versions_positions_and_metadata():
    recorded = event_append(
        stream_id="s-1",
        events=[ThingHappened(n=1), ThingHappened(n=2)],
        expected_version=0,
        correlation_id="order-1",
        causation_id="cmd-1",
        actor="alice",
    )
    assert [e.stream_version for e in recorded] == [1, 2]
    assert recorded[0].position < recorded[1].position
    stored = stream_read(stream_id="s-1")
    assert [(e.type, e.data["n"], e.correlation_id, e.causation_id, e.actor) for e in stored] == [
        ("TestThingHappened", 1, "order-1", "cmd-1", "alice"),
        ("TestThingHappened", 2, "order-1", "cmd-1", "alice"),
    ]
    assert stored[1].event == ThingHappened(n=2)


def test_wrong_expected_version_names_stream_and_versions_and_writes_nothing():
    event_append(stream_id="s-1", events=[ThingHappened(n=1)], expected_version=0)
    with pytest.raises(ConcurrencyError) as excinfo:
        event_append(stream_id="s-1", events=[ThingHappened(n=2), ThingHappened(n=3)], expected_version=0)
    assert "'s-1'" in str(excinfo.value)
    assert (excinfo.value.expected, excinfo.value.actual) == (0, 1)
    assert "version 1" in str(excinfo.value) and "version 0" in str(excinfo.value)
    assert Event.objects.count() == 1


def test_append_of_several_events_is_all_or_nothing_inside_a_failing_transaction():
    with pytest.raises(RuntimeError), transaction.atomic():
        event_append(stream_id="s-1", events=[ThingHappened(n=1), ThingHappened(n=2)], expected_version=0)
        raise RuntimeError("the command failed after appending")
    assert Event.objects.count() == 0


def test_reading_an_unregistered_type_names_type_and_position():
    row = Event.objects.create(
        stream_id="x", stream_version=1, type="NoSuchType", data={}, recorded_at="2026-01-01T00:00Z"
    )
    [recorded] = log_read(after=0)
    with pytest.raises(UnknownEventType) as excinfo:
        _ = recorded.event
    assert "NoSuchType" in str(excinfo.value)
    assert f"position {row.position}" in str(excinfo.value)


def test_payload_types_and_schema_versions_round_trip(scoped_event_types):
    @event_type("TestPriced", version=2, upcasters={1: lambda d: {**d, "currency": "EUR"}})
    class Priced(DomainEvent):
        amount: decimal.Decimal
        currency: str

    event_append(
        stream_id="p", events=[Priced(amount=decimal.Decimal("12.50"), currency="USD")], expected_version=0
    )
    # An event written by schema version 1 (no currency) is upcast on read.
    Event.objects.create(
        stream_id="p",
        stream_version=2,
        type="TestPriced",
        schema_version=1,
        data={"amount": "1.10"},
        recorded_at="2026-01-01T00:00Z",
    )
    first, second = (e.event for e in stream_read(stream_id="p"))
    assert first == Priced(amount=decimal.Decimal("12.50"), currency="USD")
    assert second == Priced(amount=decimal.Decimal("1.10"), currency="EUR")


def test_log_read_reads_everything_in_batches_from_the_last_key():
    for i in range(7):
        event_append(stream_id=f"s-{i % 3}", events=[ThingHappened(n=i)], expected_version=None)
    seen, key = [], LogKey()
    while batch := log_read(after=key, limit=3):
        seen += [e.data["n"] for e in batch]
        key = batch[-1].key
    assert seen == list(range(7))


@requires_postgres("the append-only trigger is PostgreSQL's")
@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE eventstore_event SET type = 'Edited'",
        "DELETE FROM eventstore_event",
        "TRUNCATE eventstore_event",
    ],
)
def test_postgres_refuses_edits_to_the_log_even_through_sql(statement):
    event_append(stream_id="s-1", events=[ThingHappened(n=1)], expected_version=0)
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL eventstore.allow_truncate = on")  # the old hatch is gone
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            cursor.execute(statement)
    assert Event.objects.filter(type="TestThingHappened").count() == 1


def _advisory_lock_wait() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
        return cursor.fetchone()[0] > 0


@requires_postgres("SQLite's single writer serializes guarded appends anyway")
@pytest.mark.django_db(transaction=True)
def test_guarded_appends_of_one_business_case_take_turns(run_in_thread, wait_until):
    """Two decisions about one order (e.g. cancel vs. start the charge) cannot both pass their
    guard: the second guard runs only after the first append committed, and sees it."""
    checked, release = threading.Event(), threading.Event()
    outcome: dict[str, str] = {}

    def decide(name: str, *, pause: bool) -> None:
        def guard() -> None:
            if correlation_read(correlation_id="case-1", types=["TestThingHappened"]):
                raise ValueError("decided already")
            if pause:
                checked.set()
                assert release.wait(30)

        try:
            event_append(
                stream_id=f"decision-{name}",
                events=[ThingHappened(n=1)],
                expected_version=0,
                correlation_id="case-1",
                guard=guard,
            )
            outcome[name] = "appended"
        except ValueError:
            outcome[name] = "refused"

    run_in_thread(lambda: decide("first", pause=True))
    wait_until(checked.is_set, message="the first guard to pass")
    run_in_thread(lambda: decide("second", pause=False))
    wait_until(lambda: "second" in outcome or _advisory_lock_wait(), message="the second append to wait")
    assert "second" not in outcome, "the second guard ran while the first decision was open"
    release.set()
    wait_until(lambda: len(outcome) == 2, message="both decisions")
    assert outcome == {"first": "appended", "second": "refused"}


# --- a batch's appends (events_append): one event per stream, each on its own ---------------------


def test_a_batch_append_writes_every_item_but_the_one_whose_stream_moved():
    event_append(stream_id="s-2", events=[ThingHappened(n=0)], expected_version=0)
    results = events_append(
        appends=[
            Append(
                stream_id=f"s-{n}", event=ThingHappened(n=n), expected_version=0, correlation_id=f"case-{n}"
            )
            for n in (1, 2, 3)
        ],
        actor="automation",
    )
    first, moved, third = results
    assert isinstance(moved, ConcurrencyError) and (moved.expected, moved.actual) == (0, 1)
    assert isinstance(first, RecordedEvent) and isinstance(third, RecordedEvent)
    assert [(e.stream_version, e.correlation_id, e.actor) for e in (first, third)] == [
        (1, "case-1", "automation"),
        (1, "case-3", "automation"),
    ]
    assert [e.data["n"] for e in stream_read(stream_id="s-2")] == [0]  # nothing written for it
    assert Event.objects.count() == 3


def test_a_batch_append_takes_one_event_per_stream_and_a_checked_one_one_per_case():
    twice = [Append(stream_id="s-1", event=ThingHappened(n=n), expected_version=0) for n in (1, 2)]
    with pytest.raises(ValueError, match="one append per stream"):
        events_append(appends=twice)
    same_case = [
        Append(stream_id=f"s-{n}", event=ThingHappened(n=n), expected_version=0, correlation_id="case-1")
        for n in (1, 2)
    ]
    with pytest.raises(ValueError, match="one append per business case"):
        events_append(appends=same_case, check=CaseCheck(types=[], refuse=lambda append, facts: None))
    assert not Event.objects.exists()


def _waiting_on_a_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
        )
        return cursor.fetchone()[0] > 0


@requires_postgres("SQLite has one writer: no other transaction can take a version meanwhile")
@pytest.mark.django_db(transaction=True)
def test_a_version_another_transaction_takes_during_a_batch_append_fails_only_its_item(
    append_held_open, run_in_thread, wait_until
):
    """The other transaction's row is not yet committed when the batch reads the stream's head:
    the batch's row for that stream meets it in the unique index, and only that item fails."""
    results: list = []
    appends = [Append(stream_id=f"s-{n}", event=ThingHappened(n=n), expected_version=0) for n in (1, 2)]
    with append_held_open("s-1"):
        run_in_thread(lambda: results.extend(events_append(appends=appends)))
        wait_until(_waiting_on_a_lock, message="the batch to wait for the other transaction's row")
    wait_until(lambda: len(results) == 2, message="the batch's results")
    moved, written = results
    assert isinstance(moved, ConcurrencyError) and moved.actual == 1
    assert isinstance(written, RecordedEvent) and written.stream_id == "s-2"
    assert [e.data["n"] for e in stream_read(stream_id="s-1")] == [0]


@requires_postgres("SQLite's single writer serializes guarded appends anyway")
@pytest.mark.django_db(transaction=True)
def test_a_checked_batch_append_takes_turns_with_a_guarded_append_of_the_same_case(run_in_thread, wait_until):
    """A batch's check (e.g. start these payments unless their orders were cancelled) runs only
    after a guarded decision about one of its cases committed, and sees it."""
    checked, release = threading.Event(), threading.Event()
    results: list = []

    def guard() -> None:
        checked.set()
        assert release.wait(30)

    run_in_thread(
        lambda: event_append(
            stream_id="decision-first",
            events=[ThingHappened(n=1)],
            expected_version=0,
            correlation_id="case-1",
            guard=guard,
        )
    )
    wait_until(checked.is_set, message="the first guard to pass")
    decided = CaseCheck(
        types=["TestThingHappened"],
        refuse=lambda append, facts: ValueError("decided already") if facts else None,
    )
    appends = [
        Append(
            stream_id=f"decision-{case}", event=ThingHappened(n=2), expected_version=0, correlation_id=case
        )
        for case in ("case-1", "case-2")
    ]
    run_in_thread(lambda: results.extend(events_append(appends=appends, check=decided)))
    wait_until(lambda: results or _advisory_lock_wait(), message="the batch to wait for the case's lock")
    assert not results, "the batch checked case-1 while a decision about it was open"
    release.set()
    wait_until(lambda: len(results) == 2, message="the batch's results")
    refused, written = results
    assert isinstance(refused, ValueError) and isinstance(written, RecordedEvent)
    assert not Event.objects.filter(stream_id="decision-case-1").exists()

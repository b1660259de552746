"""A poison event stops only its business case: it is parked with its error, the case's later
events queue behind it in log order, every other case goes on; a retry or a skip resolves it and a
replay repeats the outcome. A failure that is not about one event halts (code-like) or neither
parks nor halts (the database's)."""

import dataclasses

import pytest
from django.core.management import call_command
from django.db import OperationalError

from eventstore import events
from eventstore.catchup import CODE_LIKE_CASES
from eventstore.models import Event, ParkedEvent, ProjectionCheckpoint
from eventstore.parked_cases import ParkedCaseRefused, parked_case_retry, parked_case_skip, parked_cases_list
from eventstore.projections import (
    held_correlations,
    projection_catch_up,
    projection_replay,
    projection_status,
    registry,
)
from eventstore.shadow_diff import projection_replay_checked
from eventstore.store import event_append
from orders.commands import order_place
from orders.events import OrderCancelled, OrderPlaced
from orders.models import Order
from payments.models import InProcessCharge
from tests.conftest import Applied, ThingHappened, process_snapshot
from tests.factories import PARKS_ON_ORDER_PLACED, poison_order_placed

pytestmark = pytest.mark.django_db


def thing(case: str, n: int, *, poison: bool = False) -> int:
    [recorded] = event_append(
        stream_id=f"thing-{case}",
        events=[ThingHappened(n=n, poison=poison)],
        expected_version=None,
        correlation_id=case,
    )
    return recorded.position


def applied() -> list[int]:
    return list(Applied.objects.order_by("id").values_list("position", flat=True))


def parked_rows(name: str = "test_applied") -> list[tuple[int, str, bool]]:
    rows = ParkedEvent.objects.filter(projection=name).order_by("tx_id", "position")
    return [(r.position, r.correlation_id, bool(r.error)) for r in rows]


def test_one_poison_event_parks_its_case_and_every_other_case_goes_on(applied_projection):
    a1 = thing("a", 1)
    bad = thing("b", 2, poison=True)
    c1 = thing("c", 3)
    b2 = thing("b", 4)  # queued behind the poison event, never applied before it
    a2 = thing("a", 5)

    result = projection_catch_up(name="test_applied")
    assert (result.error, result.applied, result.parked) == ("", 3, 2)
    assert applied() == [a1, c1, a2]
    assert parked_rows() == [(bad, "b", True), (b2, "b", False)]
    [status] = projection_status(name="test_applied")
    assert not status.halted and status.lag == 0 and status.parked == 1
    assert ProjectionCheckpoint.objects.get(name="test_applied").parked == ["b"]
    assert "b" in held_correlations()

    # Later events of the case keep queuing; the others keep going.
    b3, c2 = thing("b", 6), thing("c", 7)
    projection_catch_up(name="test_applied")
    assert applied() == [a1, c1, a2, c2]
    assert parked_rows() == [(bad, "b", True), (b2, "b", False), (b3, "b", False)]

    # A retry before the fix fails again on the same event: one more attempt, the rest still queued.
    [outcome] = parked_case_retry(correlation_id="b", actor="ops")
    assert outcome.still_parked and "cannot handle thing 2" in outcome.error
    assert ParkedEvent.objects.get(position=bad).attempts == 2
    assert applied() == [a1, c1, a2, c2]

    applied_projection.poisoned = False  # the fix
    [outcome] = parked_case_retry(correlation_id="b", actor="ops")
    assert (outcome.still_parked, outcome.applied) == (False, 3)
    assert applied() == [a1, c1, a2, c2, bad, b2, b3]  # the case in its own order
    assert not ParkedEvent.objects.exists() and "b" not in held_correlations()
    assert ProjectionCheckpoint.objects.get(name="test_applied").parked == []
    with pytest.raises(ParkedCaseRefused, match="is not parked"):
        parked_case_retry(correlation_id="b", actor="ops")


def test_a_skip_passes_the_cases_first_event_applies_those_queued_and_replays_repeat_it(applied_projection):
    thing("a", 1)
    bad = thing("b", 2, poison=True)
    b2 = thing("b", 3)
    projection_catch_up(name="test_applied")
    with pytest.raises(ParkedCaseRefused, match="reason is required"):
        parked_case_skip(correlation_id="b", reason="  ", actor="ops")
    assert not Event.objects.filter(type="ParkedEventSkipped").exists()

    [outcome] = parked_case_skip(correlation_id="b", reason="bad import", actor="ops")
    assert not outcome.still_parked
    assert bad not in applied() and b2 in applied()
    [skip] = Event.objects.filter(type="ParkedEventSkipped")
    assert (skip.correlation_id, skip.actor, skip.data) == (
        "b",
        "ops",
        {"position": bad, "projections": ["test_applied"], "reason": "bad import"},
    )
    assert bad in ProjectionCheckpoint.objects.get(name="test_applied").skipped

    live = sorted(applied())
    assert projection_replay(name="test_applied").error == ""  # still poisoned: the skip is repeated
    assert sorted(applied()) == live and not ParkedEvent.objects.exists()
    # From the log alone (a restore that rebuilds the checkpoints too): the skip event is the truth.
    ProjectionCheckpoint.objects.filter(name="test_applied").delete()
    assert projection_replay(name="test_applied").error == ""
    assert sorted(applied()) == live and not ParkedEvent.objects.exists()


def test_a_second_skip_of_the_event_shown_never_passes_the_next_one(applied_projection):
    """A double click, a second operator, a cached page: the skip names the event the operator saw."""
    first, second = thing("b", 2, poison=True), thing("b", 3, poison=True)
    projection_catch_up(name="test_applied")
    [outcome] = parked_case_skip(correlation_id="b", reason="bad import", actor="ops", position=first)
    assert outcome.still_parked  # the event queued behind it fails too: parked on it now
    with pytest.raises(ParkedCaseRefused, match=f"parked on event #{second} now, not #{first}"):
        parked_case_skip(correlation_id="b", reason="bad import", actor="ops", position=first)
    assert [p for p, _, _ in parked_rows()] == [second]
    assert Event.objects.filter(type="ParkedEventSkipped").count() == 1


def test_a_skip_that_waited_for_a_retry_which_resolved_the_case_is_refused_not_a_crash(
    applied_projection, monkeypatch
):
    from eventstore import parked_cases

    bad = thing("b", 2, poison=True)
    projection_catch_up(name="test_applied")
    real_lock = parked_cases.checkpoint_locked

    def lock_after_a_retry_committed(name):
        ParkedEvent.objects.filter(correlation_id="b").delete()  # what the retry holding the lock did
        return real_lock(name)

    monkeypatch.setattr(parked_cases, "checkpoint_locked", lock_after_a_retry_committed)
    with pytest.raises(ParkedCaseRefused, match="is not parked"):
        parked_case_skip(correlation_id="b", reason="bad import", actor="ops", position=bad)
    assert not Event.objects.filter(type="ParkedEventSkipped").exists()


def test_a_replay_of_the_same_log_parks_the_same_cases(applied_projection):
    thing("a", 1)
    bad = thing("b", 2, poison=True)
    b2 = thing("b", 3)
    projection_catch_up(name="test_applied")
    before = sorted(applied())
    assert projection_replay_checked(name="test_applied", check=True).diff.total == 0

    assert projection_replay(name="test_applied").error == ""
    assert sorted(applied()) == before
    assert parked_rows() == [(bad, "b", True), (b2, "b", False)]
    assert ProjectionCheckpoint.objects.get(name="test_applied").parked == ["b"]

    applied_projection.poisoned = False  # a fixed handler: the check names the case it unparks
    checked = projection_replay_checked(name="test_applied", check=True)
    assert ("removed", "parked cases", ("b",)) in [(r.kind, r.table, r.key) for r in checked.diff.rows]


def test_a_handler_bug_hitting_every_case_halts_the_whole_projection(applied_projection):
    good = thing("a", 1)
    projection_catch_up(name="test_applied")
    # A deploy breaks the handler: every event of the type fails, whatever its case.
    bad = [thing(f"case-{i}", 10 + i, poison=True) for i in range(CODE_LIKE_CASES)]
    result = projection_catch_up(name="test_applied")
    assert "cannot handle thing 10" in result.error
    [status] = projection_status(name="test_applied")
    assert status.halted and status.error_position == bad[0] and status.position == good
    assert applied() == [good] and not ParkedEvent.objects.exists()


def test_a_handler_bug_met_one_event_per_catch_up_halts_at_the_third_case_not_the_hundredth(
    applied_projection,
):
    """Under a trickle each catch-up sees one event: the cases parked alike before count."""
    good = thing("a", 1)
    projection_catch_up(name="test_applied")
    bad = []
    for i in range(CODE_LIKE_CASES):
        bad.append(thing(f"case-{i}", 10 + i, poison=True))
        result = projection_catch_up(name="test_applied")
    assert result.error and f"cannot handle thing {10 + CODE_LIKE_CASES - 1}" in result.error
    [status] = projection_status(name="test_applied")
    assert status.halted and status.error_position == bad[-1]
    assert applied() == [good] and [p for p, _, _ in parked_rows()] == bad[:-1]


def test_an_old_parking_for_bad_data_does_not_hide_a_later_handler_bug(applied_projection):
    old = thing("old", 1, poison=True)  # bad data, long ago; the type applied fine after it
    thing("fine", 2)
    projection_catch_up(name="test_applied")
    bad = []
    for i in range(CODE_LIKE_CASES):
        bad.append(thing(f"case-{i}", 10 + i, poison=True))
        result = projection_catch_up(name="test_applied")
    assert result.error and projection_status(name="test_applied")[0].error_position == bad[-1]
    assert [p for p, _, _ in parked_rows()] == [old, *bad[:-1]]


def test_cases_parked_alike_one_per_catch_up_beside_an_applied_event_of_their_type_stay_data(
    applied_projection,
):
    bad = []
    for i in range(CODE_LIKE_CASES):
        bad.append(thing(f"case-{i}", 10 + i, poison=True))
        thing(f"fine-{i}", 20 + i)  # the handler still applies the type: the failures are the data's
        result = projection_catch_up(name="test_applied")
        assert not result.error
    assert [p for p, _, _ in parked_rows()] == bad and len(applied()) == CODE_LIKE_CASES


def test_as_many_failing_cases_beside_an_applied_event_of_their_type_are_data_and_park(applied_projection):
    bad = [thing(f"case-{i}", 10 + i, poison=True) for i in range(CODE_LIKE_CASES)]
    fine = thing("a", 1)
    result = projection_catch_up(name="test_applied")
    assert (result.error, result.parked) == ("", CODE_LIKE_CASES)
    assert applied() == [fine] and [p for p, _, _ in parked_rows()] == bad


def test_a_poison_event_with_no_business_case_halts_the_projection(applied_projection):
    good = thing("a", 1)
    [bad] = event_append(stream_id="ops", events=[ThingHappened(n=2, poison=True)], expected_version=None)
    result = projection_catch_up(name="test_applied")
    assert "cannot handle thing 2" in result.error
    [status] = projection_status(name="test_applied")
    assert status.halted and status.error_position == bad.position and applied() == [good]


def test_more_parked_cases_than_the_limit_halt_the_projection(applied_projection, settings):
    settings.EVENTSTORE_PARKED_CASES_LIMIT = 2
    thing("a", 1, poison=True)
    projection_catch_up(name="test_applied")
    thing("b", 2, poison=True)
    projection_catch_up(name="test_applied")
    third = thing("c", 3, poison=True)
    result = projection_catch_up(name="test_applied")
    assert "more than 2 parked cases" in result.error
    [status] = projection_status(name="test_applied")
    assert status.halted and status.error_position == third and status.parked == 2


def test_a_database_error_neither_parks_nor_halts(applied_projection, monkeypatch):
    thing("a", 1)
    projection = registry.get("test_applied")
    calls = []

    def down(batch):
        calls.append(len(batch.events))
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setitem(registry._items, "test_applied", dataclasses.replace(projection, apply=down))
    with pytest.raises(OperationalError):
        projection_catch_up(name="test_applied")
    assert calls == [1]  # the batch once, no event tried alone
    [status] = projection_status(name="test_applied")
    assert not status.halted and status.position == 0 and status.parked == 0
    assert not ParkedEvent.objects.exists()

    monkeypatch.setitem(registry._items, "test_applied", projection)  # the database is back
    assert projection_catch_up(name="test_applied").applied == 1


def test_the_parked_cases_command_lists_them_and_retries_and_skips(applied_projection, capsys):
    bad = thing("b", 2, poison=True)
    thing("b", 3)
    projection_catch_up(name="test_applied")
    [case] = parked_cases_list()
    assert (case.correlation_id, case.position, case.projections, case.queued) == (
        "b",
        bad,
        ["test_applied"],
        1,
    )
    call_command("parked_cases")
    out = capsys.readouterr().out
    assert f"b: event #{bad} (TestThingHappened)" in out and "1 queued" in out


# --- the process: orders, payments and their lists -----------------------------------------------


def test_acceptance_a_poison_order_placed_parks_only_its_order_and_one_retry_after_a_fix_resolves_it(
    place_orders, monkeypatch
):
    poison = poison_order_placed()
    bad = poison.correlation_id
    paid, _ = place_orders(visa=100, declined=0)

    call_command("process_todos")  # no projection halts: nothing to refuse
    assert Order.objects.filter(order_id__in=paid, status="confirmed").count() == 100
    assert not any(s.halted for s in projection_status())
    assert {c.correlation_id: c.projections for c in parked_cases_list()} == {bad: PARKS_ON_ORDER_PLACED}
    assert not InProcessCharge.objects.filter(order_id=bad).exists()
    assert not Event.objects.filter(correlation_id=bad, type="PaymentStarted").exists()
    assert not Order.objects.filter(order_id=bad).exists()

    # The fix: an upcaster for the old data (the missing amount), then one retry.
    monkeypatch.setattr(OrderPlaced, "schema_version", 2)
    monkeypatch.setitem(events._UPCASTERS, "OrderPlaced", {1: lambda data: {"amount": "12.50", **data}})
    outcomes = parked_case_retry(correlation_id=bad, actor="ops")
    assert sorted(o.projection for o in outcomes if not o.still_parked) == PARKS_ON_ORDER_PLACED
    assert not parked_cases_list() and bad not in held_correlations()
    call_command("process_todos")
    assert Order.objects.get(order_id=bad).status == "confirmed"
    assert InProcessCharge.objects.filter(order_id=bad).count() == 1

    before = process_snapshot()
    call_command("replay_projections")  # the same log, the same code: the same rows, nothing parked
    assert process_snapshot() == before and not ParkedEvent.objects.exists()


def test_a_cancel_behind_a_poison_order_placed_waits_queued_and_is_applied_after_the_skip(no_nudge):
    poison = poison_order_placed()
    bad = poison.correlation_id
    [cancel] = event_append(
        stream_id=f"order-{bad}",
        events=[OrderCancelled(order_id=bad, reason="customer asked")],
        expected_version=1,
        correlation_id=bad,
    )
    fine = order_place(amount="10.00", currency="EUR")
    call_command("process_todos")
    assert Order.objects.get(order_id=fine).status == "confirmed"
    queued = ParkedEvent.objects.filter(position=cancel.position)
    assert sorted(queued.values_list("projection", "error")) == [
        ("orders", ""),
        ("todo:payments_to_issue", ""),
    ]

    call_command("parked_case_skip", bad, "--reason", "bad import", "--actor", "ops")
    assert not ParkedEvent.objects.exists() and not any(s.halted for s in projection_status())
    # The cancel was applied (nothing to cancel: the placement was passed), never before it.
    assert not Order.objects.filter(order_id=bad).exists()
    [skip] = Event.objects.filter(type="ParkedEventSkipped", correlation_id=bad)
    assert skip.data["projections"] == PARKS_ON_ORDER_PLACED
    assert not InProcessCharge.objects.filter(order_id=bad).exists()

    before = process_snapshot()
    call_command("replay_projections")  # the skip is repeated: nothing parks again
    assert process_snapshot() == before and not ParkedEvent.objects.exists()


def test_a_dry_run_reports_the_cases_its_fold_would_park_and_writes_nothing(no_nudge, capsys):
    poison = poison_order_placed()
    order_place(amount="10.00", currency="EUR")
    call_command("todo_dry_run", "payments.todo:payments_to_issue")
    assert "would park 1 business case(s)" in capsys.readouterr().out
    assert not ParkedEvent.objects.exists()
    assert not any(cp.parked for cp in ProjectionCheckpoint.objects.all())
    assert not Event.objects.filter(correlation_id=poison.correlation_id).exclude(pk=poison.pk).exists()

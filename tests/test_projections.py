"""The projection engine: no missed events, exactly-once, halting on a poison event, replay."""

import json
import random
import threading

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction

from eventstore.projections import projection_catch_up, projection_replay, projection_status
from eventstore.store import APPEND_LOCK_ID, ConcurrencyError, event_append, log_read, stream_version
from tests.conftest import Applied, ThingHappened, requires_postgres

pytestmark = pytest.mark.django_db(transaction=True)


def applied_positions() -> list[int]:
    return list(Applied.objects.order_by("id").values_list("position", flat=True))


def all_positions() -> list[int]:
    return [e.position for e in log_read(after=0, limit=10**9, types=["TestThingHappened"])]


def someone_waits_for_the_append_lock() -> bool:
    with connection.cursor() as cursor:
        # Only our lock, in this database: another test run on the same server must not count.
        cursor.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " AND ((classid::bigint << 32) | objid::bigint) = %s",
            [APPEND_LOCK_ID],
        )
        return cursor.fetchone()[0] > 0


def _commit_out_of_order(run_in_thread, wait_until) -> None:
    """Hold append A open while a later append B tries to commit and the projector runs."""
    a_appended, release_a, b_done = threading.Event(), threading.Event(), threading.Event()

    def slow_append():
        with transaction.atomic():
            event_append(stream_id="slow", events=[ThingHappened(n=1)], expected_version=0)
            a_appended.set()
            assert release_a.wait(30), "test never released append A"

    def fast_append():
        event_append(stream_id="fast", events=[ThingHappened(n=2)], expected_version=0)
        b_done.set()

    run_in_thread(slow_append)
    wait_until(a_appended.is_set, message="append A to hold its transaction open")
    run_in_thread(fast_append)
    wait_until(
        lambda: b_done.is_set() or someone_waits_for_the_append_lock(), message="append B to commit or wait"
    )
    projection_catch_up(name="test_applied")  # the projector runs while A is still open
    release_a.set()
    wait_until(b_done.is_set, message="append B to commit")
    wait_until(lambda: len(all_positions()) == 2, message="both appends to commit")
    projection_catch_up(name="test_applied")


@requires_postgres("SQLite has one writer, so commits cannot reorder")
def test_projector_never_skips_an_event_that_commits_out_of_position_order(
    applied_projection, run_in_thread, wait_until
):
    _commit_out_of_order(run_in_thread, wait_until)
    assert applied_positions() == all_positions()
    assert len(applied_positions()) == 2


@requires_postgres("SQLite has one writer, so commits cannot reorder")
def test_without_the_append_lock_the_same_scenario_skips_an_event(
    applied_projection, run_in_thread, wait_until, monkeypatch
):
    """Proves the test above can fail: remove the protection and the late commit is lost."""
    monkeypatch.setattr("eventstore.store._lock_log", lambda: None)
    _commit_out_of_order(run_in_thread, wait_until)
    _first, second = all_positions()
    assert applied_positions() == [second]  # `first` committed after the checkpoint passed it


@requires_postgres("8 concurrent writers need a server database")
def test_concurrent_appends_while_projecting_apply_every_event_once_in_order(
    applied_projection, run_in_thread
):
    writers, per_writer = 8, 500
    streams = [f"stream-{i}" for i in range(40)]
    done = threading.Event()

    def writer(seed: int):
        rng = random.Random(seed)
        for n in range(per_writer):
            while True:
                stream = rng.choice(streams)
                try:
                    event_append(
                        stream_id=stream,
                        events=[ThingHappened(n=n)],
                        expected_version=stream_version(stream_id=stream),
                    )
                    break
                except ConcurrencyError:
                    continue  # another writer won the race for that stream version: read again

    def projector():
        while not done.is_set():
            projection_catch_up(name="test_applied", batch_size=100)

    threads = [run_in_thread(lambda s=s: writer(s)) for s in range(writers)]
    run_in_thread(projector)
    for t in threads:
        t.join(timeout=300)
    done.set()
    projection_catch_up(name="test_applied")
    assert not run_in_thread.errors
    positions = applied_positions()
    assert len(positions) == writers * per_writer
    assert positions == sorted(set(positions)) == all_positions()


def test_two_concurrent_catch_ups_apply_every_event_once(applied_projection, run_in_thread):
    for i in range(600):
        event_append(stream_id=f"s-{i % 10}", events=[ThingHappened(n=i)], expected_version=None)
    start = threading.Barrier(2)

    def catch_up():
        start.wait(10)
        projection_catch_up(name="test_applied", batch_size=25)

    threads = [run_in_thread(catch_up) for _ in range(2)]
    for t in threads:
        t.join(timeout=120)
    assert not run_in_thread.errors
    assert applied_positions() == all_positions()
    assert len(applied_positions()) == 600


def test_poison_event_halts_the_projection_and_resumes_after_the_fix(applied_projection, capsys):
    event_append(stream_id="s", events=[ThingHappened(n=1), ThingHappened(n=2)], expected_version=0)
    [poison] = event_append(stream_id="s", events=[ThingHappened(n=3, poison=True)], expected_version=2)
    event_append(stream_id="s", events=[ThingHappened(n=4)], expected_version=3)

    result = projection_catch_up(name="test_applied")
    assert result.applied == 2
    assert "cannot handle thing 3" in result.error
    assert len(applied_positions()) == 2
    # A second try fails the same way: it never skips the bad event.
    assert projection_catch_up(name="test_applied").applied == 0

    with pytest.raises(CommandError, match="Halted: test_applied at #"):
        call_command("projection_status", "--json")  # prints, then exits non-zero naming it
    [status] = [s for s in json.loads(capsys.readouterr().out) if s["name"] == "test_applied"]
    assert status["halted"] is True
    assert status["error_position"] == poison.position
    assert status["error_type"] == "TestThingHappened"
    assert "ValueError: cannot handle thing 3" in status["error_message"]
    assert status["error_count"] == 2
    assert status["position"] == poison.position - 1

    applied_projection.poisoned = False
    result = projection_catch_up(name="test_applied")
    assert (result.applied, result.error) == (2, "")
    assert applied_positions() == all_positions()
    [status] = projection_status(name="test_applied")
    assert not status.halted and status.lag == 0


def test_replay_rebuilds_the_same_rows(applied_projection):
    for i in range(30):
        event_append(stream_id=f"s-{i % 4}", events=[ThingHappened(n=i)], expected_version=None)
    projection_catch_up(name="test_applied")
    live = sorted(Applied.objects.values_list("position", "stream_id"))
    result = projection_replay(name="test_applied", batch_size=7)
    assert result.applied == 30
    assert sorted(Applied.objects.values_list("position", "stream_id")) == live


def test_a_replay_that_hits_a_failing_handler_rolls_back_and_keeps_the_working_rows(applied_projection):
    for i in range(5):
        event_append(stream_id=f"s-{i}", events=[ThingHappened(n=i)], expected_version=0)
    applied_projection.poisoned = False
    projection_catch_up(name="test_applied")
    event_append(stream_id="s-bad", events=[ThingHappened(n=9, poison=True)], expected_version=0)
    projection_catch_up(name="test_applied")
    live = sorted(Applied.objects.values_list("position", flat=True))
    applied_projection.poisoned = True
    result = projection_replay(name="test_applied")
    assert "replay rolled back" in result.error and "cannot handle thing 9" in result.error
    assert sorted(Applied.objects.values_list("position", flat=True)) == live


def test_replay_of_a_todo_list_keeps_live_claims(no_nudge):
    from django.utils import timezone

    from tests.factories import PlacedOrderFactory
    from todolists.models import TodoItem

    order_id = PlacedOrderFactory()
    projection_catch_up(name="todo:payments_to_issue")
    until = timezone.now() + timezone.timedelta(seconds=60)
    TodoItem.objects.filter(key=order_id).update(claimed_by="worker-1", claimed_until=until)
    before = TodoItem.objects.get(key=order_id)
    projection_replay(name="todo:payments_to_issue")
    item = TodoItem.objects.get(key=order_id)
    assert (item.claimed_by, item.claimed_until) == ("worker-1", until)
    assert item.pk == before.pk  # rewritten in place: a worker's release during the replay finds it

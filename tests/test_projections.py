"""The projection engine: no missed events, exactly-once, halting on a poison event, replay."""

import json
import random
import threading

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction

from eventstore.backends.postgresql import PostgreSQLBackend
from eventstore.models import Event, ProjectionCheckpoint
from eventstore.projections import projection_catch_up, projection_replay, projection_status
from eventstore.store import ConcurrencyError, event_append, log_read, stream_version
from tests.conftest import Applied, ThingHappened, requires_postgres

pytestmark = pytest.mark.django_db(transaction=True)


def applied_positions() -> list[int]:
    return list(Applied.objects.order_by("id").values_list("position", flat=True))


def all_positions() -> list[int]:
    return [e.position for e in log_read(after=0, limit=10**9, types=["TestThingHappened"])]


def _commit_out_of_order(run_in_thread, wait_until) -> None:
    """Hold append A open (it took position 1) while append B (position 2) commits and the
    projector runs; then commit A and run the projector again."""
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
    wait_until(b_done.is_set, message="append B to commit (appends take no global lock)")
    projection_catch_up(name="test_applied")  # the projector runs while A is still open
    release_a.set()
    wait_until(lambda: len(all_positions()) == 2, message="both appends to commit")
    projection_catch_up(name="test_applied")


@requires_postgres("SQLite has one writer, so commits cannot reorder")
def test_projector_never_skips_an_event_that_commits_out_of_position_order(
    applied_projection, run_in_thread, wait_until
):
    _commit_out_of_order(run_in_thread, wait_until)
    assert len(applied_positions()) == 2
    assert applied_positions() == all_positions()


@requires_postgres("SQLite has one writer, so commits cannot reorder")
def test_without_the_transaction_id_bound_the_same_scenario_skips_an_event(
    applied_projection, run_in_thread, wait_until, monkeypatch
):
    """Proves the test above can fail: read past running transactions and the late commit is lost."""
    monkeypatch.setattr(
        PostgreSQLBackend, "bound_sql", staticmethod(lambda *, settled: "SELECT 9223372036854775807")
    )
    _commit_out_of_order(run_in_thread, wait_until)
    _first, second = sorted(all_positions())
    assert applied_positions() == [second]  # `first` committed after the checkpoint passed it


@requires_postgres("transaction ids are PostgreSQL's")
def test_a_write_transaction_in_another_database_never_holds_our_readers_back(
    applied_projection, other_database
):
    import psycopg

    with psycopg.connect(other_database) as other:  # one open write transaction, another database
        other.execute("CREATE TABLE batch_job (n int)")
        other.execute("INSERT INTO batch_job VALUES (1)")
        event_append(stream_id="ours", events=[ThingHappened(n=1)], expected_version=0)
        assert projection_catch_up(name="test_applied").applied == 1
        assert projection_status(name="test_applied")[0].held_back_seconds is None
        other.rollback()
    assert applied_positions() == all_positions()


@requires_postgres("transaction ids are PostgreSQL's")
def test_savepoints_of_a_transaction_in_another_database_never_hold_our_readers_back(
    applied_projection, other_database
):
    """A savepoint's id comes from the same counter as every transaction's and, once released,
    shows in no lock: only its transaction's own id says which database it belongs to."""
    import psycopg

    with psycopg.connect(other_database) as other:
        other.execute("CREATE TABLE batch_job (n int)")
        event_append(stream_id="ours", events=[ThingHappened(n=1)], expected_version=0)
        for n in range(20):  # savepoint ids above every committed id: above our snapshot's xmax
            with other.transaction():
                other.execute("INSERT INTO batch_job VALUES (%s)", [n])
        with transaction.atomic():  # a writer of ours, whose id comes after those savepoints
            event_append(stream_id="ours-too", events=[ThingHappened(n=2)], expected_version=0)
            assert projection_catch_up(name="test_applied").applied == 2  # its own event too
        other.rollback()
    assert applied_positions() == all_positions()


@requires_postgres("transaction ids are PostgreSQL's")
def test_a_transaction_of_another_database_ending_during_a_read_never_hides_our_own_events(
    applied_projection, other_database, monkeypatch, run_in_thread, wait_until
):
    """The read's snapshot lists the other database's transaction as running; by the time the
    read looks at the locks it has ended, so nothing says whose it was. The read looks again."""
    import psycopg

    original = PostgreSQLBackend.bound_sql
    monkeypatch.setattr(  # the read's statement pauses between its snapshot and its look at the locks
        PostgreSQLBackend, "bound_sql",
        staticmethod(lambda *, settled: original(settled=settled) if settled
                     else f"SELECT CASE WHEN pg_sleep(0.8)::text = '' THEN ({original(settled=False)}) END"),
    )  # fmt: skip
    ended = threading.Event()
    with psycopg.connect(other_database) as other, psycopg.connect(other_database, autocommit=True) as look:
        other.execute("CREATE TABLE batch_job (n int)")
        other.execute("INSERT INTO batch_job VALUES (1)")  # older than our append's transaction

        def end_it_mid_read():
            sleeping = "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE query LIKE '%pg_sleep(0.8)%' AND state = 'active' AND pid <> pg_backend_pid())"  # fmt: skip
            wait_until(lambda: look.execute(sleeping).fetchone()[0], timeout=30)
            other.commit()
            ended.set()

        run_in_thread(end_it_mid_read)
        with transaction.atomic():
            event_append(stream_id="ours", events=[ThingHappened(n=1)], expected_version=0)
            assert projection_catch_up(name="test_applied").applied == 1
    assert ended.is_set()


@requires_postgres("transaction ids are PostgreSQL's")
def test_a_write_transaction_in_our_database_still_holds_readers_back(applied_projection, run_in_thread):
    """The twin of the test above: the bound leaves out only other databases' transactions."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_database()")
        (name,) = cursor.fetchone()
    import psycopg

    s = connection.settings_dict
    conninfo = psycopg.conninfo.make_conninfo(
        host=s["HOST"] or "127.0.0.1", port=s["PORT"] or 5432, user=s["USER"], dbname=name
    )
    with psycopg.connect(conninfo) as ours:
        ours.execute("SELECT pg_current_xact_id()")  # a write transaction of our database, still open
        event_append(stream_id="ours", events=[ThingHappened(n=1)], expected_version=0)
        assert projection_catch_up(name="test_applied").applied == 0  # held back, not skipped
        ours.rollback()
    assert projection_catch_up(name="test_applied").applied == 1


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
    assert len(positions) == len(set(positions)) == writers * per_writer
    assert positions == all_positions()  # in the log's read order, each once
    # Each stream is read in version order, whichever transaction started first.
    versions = dict(Event.objects.values_list("position", "stream_version"))
    streams = dict(Event.objects.values_list("position", "stream_id"))
    for stream in set(streams.values()):
        seen = [versions[p] for p in positions if streams[p] == stream]
        assert seen == sorted(seen), stream


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

    with pytest.raises(
        CommandError, match=r"projection test_applied is halted at event #\d+ \(TestThingHappened"
    ):
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


def test_a_replay_that_hits_a_failing_handler_keeps_the_live_rows(applied_projection):
    for i in range(5):
        event_append(stream_id=f"s-{i}", events=[ThingHappened(n=i)], expected_version=0)
    applied_projection.poisoned = False
    projection_catch_up(name="test_applied")
    event_append(stream_id="s-bad", events=[ThingHappened(n=9, poison=True)], expected_version=0)
    projection_catch_up(name="test_applied")
    live = sorted(Applied.objects.values_list("position", flat=True))
    applied_projection.poisoned = True
    result = projection_replay(name="test_applied")
    assert "live projection is unchanged" in result.error and "cannot handle thing 9" in result.error
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


def test_a_failed_checkpoint_write_commits_none_of_the_batchs_read_model_writes(
    applied_projection, monkeypatch
):
    applied_projection.poisoned = False
    for i in range(5):
        event_append(stream_id=f"s-{i}", events=[ThingHappened(n=i)], expected_version=0)

    def refuse(self, *args, **kwargs):
        raise RuntimeError("checkpoint write failed")

    monkeypatch.setattr(ProjectionCheckpoint, "save", refuse)
    with pytest.raises(RuntimeError, match="checkpoint write failed"):
        projection_catch_up(name="test_applied")
    assert not Applied.objects.exists()  # the handlers' rows went with the checkpoint


@requires_postgres("watching a lock wait through pg_locks")
def test_a_second_catch_up_waits_for_the_checkpoint_row_lock(applied_projection, run_in_thread, wait_until):
    """The first catch-up holds the checkpoint while it applies; the second waits for it before
    reading the checkpoint, then finds the batch applied and applies nothing twice."""
    applied_projection.poisoned = False
    event_append(stream_id="s-0", events=[ThingHappened(n=0)], expected_version=0)
    projection_catch_up(name="test_applied")  # the checkpoint row exists
    event_append(stream_id="s-late", events=[ThingHappened(n=9)], expected_version=0)
    entered, release = threading.Event(), threading.Event()
    applied_projection.hold = (entered, release)
    second: dict = {}

    def catch_up():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            second["pid"] = cursor.fetchone()[0]
        second["result"] = projection_catch_up(name="test_applied")

    def waiting() -> bool:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_locks WHERE pid = %s AND NOT granted", [second["pid"]])
            return cursor.fetchone()[0] > 0

    run_in_thread(lambda: projection_catch_up(name="test_applied"))
    wait_until(entered.is_set, message="the first catch-up to be applying, checkpoint locked")
    run_in_thread(catch_up)
    wait_until(lambda: "result" in second or ("pid" in second and waiting()), message="a lock wait")
    assert "result" not in second, "the second catch-up ran while the checkpoint row was locked"
    release.set()
    wait_until(lambda: "result" in second, message="the second catch-up to finish")
    assert second["result"].applied == 0
    assert applied_positions() == all_positions()  # each event once


def test_a_replay_keeps_the_live_projection_serving_and_catching_up(applied_projection, run_in_thread):
    """The rebuild runs in short batch transactions: between two of them another connection appends
    and catches the live projection up, and the live rows stay whole the whole time."""
    applied_projection.poisoned = False
    for i in range(40):
        event_append(stream_id=f"s-{i % 4}", events=[ThingHappened(n=i)], expected_version=None)
    projection_catch_up(name="test_applied")
    live_during: list[int] = []

    def meanwhile(position: int) -> None:
        if live_during:
            return

        def live_traffic():
            event_append(stream_id="s-new", events=[ThingHappened(n=99)], expected_version=None)
            projection_catch_up(name="test_applied")

        run_in_thread(live_traffic).join(30)
        live_during.append(Applied.objects.count())

    result = projection_replay(name="test_applied", batch_size=10, progress=meanwhile)
    assert not run_in_thread.errors and not result.error
    assert live_during == [41]  # the live table served all its rows, plus the new one, mid-rebuild
    assert applied_positions() == all_positions()  # the swapped-in rows include the new event
    assert result.applied == 41


@requires_postgres("transaction ids are PostgreSQL's")
def test_projection_status_names_a_write_transaction_that_holds_readers_back(
    applied_projection, append_held_open, wait_until, settings, capsys
):
    settings.EVENTSTORE_HELD_BACK_AFTER_SECONDS = 0.5
    with append_held_open("slow", n=1):
        event_append(stream_id="fast", events=[ThingHappened(n=2)], expected_version=0)
        assert projection_catch_up(name="test_applied").applied == 0  # held back, not skipped
        wait_until(
            lambda: projection_status(name="test_applied")[0].held_back_seconds is not None,
            message="the open transaction to pass the threshold",
        )
        call_command("projection_status")
        assert "held back by a write transaction open for" in capsys.readouterr().out
    wait_until(lambda: projection_catch_up(name="test_applied").applied == 2 or len(applied_positions()) == 2)
    assert applied_positions() == all_positions()

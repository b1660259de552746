"""The automation runner: claims, leases and their heartbeat, batches, takeover of a dead worker's
items, and the side effects it must never repeat (replay, cancel guard)."""

import collections
import datetime
import re
import threading

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.db.models import Count
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from eventstore.backends.postgresql import READ_AGAIN
from eventstore.models import Event
from eventstore.projections import projections_catch_up
from eventstore.store import correlations_read
from orders.commands import order_cancel
from orders.models import Order
from payments.commands import Outcome, payment_issue
from payments.events import PaymentIssued
from payments.models import InProcessCharge
from tests.conftest import ScriptedGateway, requires_postgres
from tests.factories import PlacedOrderFactory
from todolists.leases import todo_items_claim, todo_leases_expired
from todolists.models import TodoItem
from todolists.runner import todo_list_work, todo_lists_work

pytestmark = pytest.mark.django_db


def refuse_to_charge(use_gateway, why: str) -> None:
    def charge(charge, **request):
        raise AssertionError(why)

    use_gateway(ScriptedGateway(charge))


@requires_postgres("row locks and SKIP LOCKED; SQLite has one writer and no row locks")
@pytest.mark.django_db(transaction=True)
def test_a_claim_skips_an_item_another_transaction_has_locked(place_orders, run_in_thread):
    place_orders(visa=11, declined=0)
    projections_catch_up()
    first = TodoItem.objects.filter(list_name="payments_to_issue").order_by("opened_position").first()
    locked, release = threading.Event(), threading.Event()

    def hold_the_first_row():
        with transaction.atomic():
            TodoItem.objects.select_for_update().get(pk=first.pk)
            locked.set()
            release.wait(30)

    run_in_thread(hold_the_first_row)
    assert locked.wait(10)
    with connection.cursor() as cursor:
        # Without SKIP LOCKED the claim would wait for the row: fail fast instead of hanging.
        cursor.execute("SET lock_timeout = '2s'")
        try:
            claimed = todo_items_claim(list_name="payments_to_issue", worker="w2", limit=10)
        finally:
            release.set()
            cursor.execute("RESET lock_timeout")
    keys = [i.key for i in claimed]
    assert first.key not in keys
    assert len(keys) == 10


def test_replay_of_lists_with_open_items_never_does_the_work(place_orders, use_gateway):
    place_orders(visa=2, declined=1)
    call_command("process_todos", "--list", "payments_to_issue")
    place_orders(visa=3, declined=0)  # three more, still open on payments_to_issue
    projections_catch_up()
    open_before = TodoItem.objects.filter(status="open").count()
    assert open_before == 3 + 2 + 1  # to pay, to confirm, to cancel
    refuse_to_charge(use_gateway, "a replay must never call the payment gateway")
    events_before = Event.objects.count()
    call_command("replay_projections")
    assert Event.objects.count() == events_before
    assert TodoItem.objects.filter(status="open").count() == open_before


def test_a_cancellation_after_the_re_read_stops_the_charge(place_orders, use_gateway):
    """The batch re-read the order before an operator cancelled it: the guard on PaymentStarted,
    checked under the append lock, still refuses to start the payment."""
    [order_id], _ = place_orders(visa=1, declined=0)
    stale = correlations_read(correlation_ids=[order_id])[order_id]
    order_cancel(order_id=order_id, reason="customer called")
    refuse_to_charge(use_gateway, "charged a cancelled order")
    assert payment_issue(order_id=order_id, case=stale) == Outcome.ORDER_CANCELLED
    assert not Event.objects.filter(type="PaymentStarted").exists()


def test_a_dead_workers_expired_lease_is_listed_with_its_holder(place_orders):
    [dead, alive, _free], _ = place_orders(visa=3, declined=0)
    projections_catch_up()
    now = timezone.now()
    TodoItem.objects.filter(key=dead).update(
        claimed_by="dead-host:1", claimed_until=now - datetime.timedelta(seconds=5)
    )
    TodoItem.objects.filter(key=alive).update(
        claimed_by="live-host:2", claimed_until=now + datetime.timedelta(seconds=60)
    )
    assert list(todo_leases_expired().values_list("key", "claimed_by")) == [(dead, "dead-host:1")]


@pytest.mark.django_db(transaction=True)
def test_a_heartbeat_keeps_the_lease_of_a_batch_that_outlasts_it(
    place_orders, settings, use_gateway, wait_until
):
    settings.TODO_LEASE_SECONDS = 1  # renewed every third of a second while the batch is in hand
    [order_id], _ = place_orders(visa=1, declined=0)
    projections_catch_up()
    stolen = []

    def slow_charge(charge, **request):
        item = TodoItem.objects.get(list_name="payments_to_issue", key=order_id)
        first_lease = item.claimed_until

        def outlived() -> bool:
            # Well past the first lease's end, and the lease is still this worker's and alive.
            return timezone.now() > first_lease + datetime.timedelta(seconds=1) and (
                TodoItem.objects.filter(
                    pk=item.pk, claimed_by="w1", claimed_until__gt=timezone.now()
                ).exists()
            )

        wait_until(outlived, timeout=10, message="the heartbeat to renew the lease past its first end")
        stolen.extend(todo_items_claim(list_name="payments_to_issue", worker="w2", limit=10))
        return charge()

    use_gateway(ScriptedGateway(slow_charge))
    result = todo_list_work(list_name="payments_to_issue", worker="w1")
    assert (result.worked, result.failed) == (1, 0)
    assert stolen == []
    assert TodoItem.objects.get(list_name="payments_to_issue", key=order_id).status == "done"


@pytest.mark.django_db(transaction=True)
def test_a_task_takes_over_the_items_of_a_worker_that_died_holding_them(place_orders, settings, monkeypatch):
    [order_id], _ = place_orders(visa=1, declined=0)
    projections_catch_up()
    # Another worker claimed the item and died: nobody renews its lease, which ends in a few seconds
    # (long enough for the first call below to find it live even on a slow machine).
    TodoItem.objects.filter(key=order_id).update(
        claimed_by="dead-host:1", claimed_until=timezone.now() + datetime.timedelta(seconds=3)
    )
    assert sum(r.worked for r in todo_lists_work(worker="live-host:2")) == 0  # without takeover: left alone
    results = todo_lists_work(worker="live-host:2", take_over=True)
    assert sum(r.worked for r in results if r.list_name == "payments_to_issue") == 1
    assert Order.objects.get(order_id=order_id).status == "confirmed"
    assert InProcessCharge.objects.filter(order_id=order_id).count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_network_bound_gateway_charges_a_batch_concurrently(place_orders, use_gateway):
    """Four charges must be in flight at once to pass the barrier; one at a time, it breaks."""
    paid, _ = place_orders(visa=4, declined=0)
    in_flight = threading.Barrier(4, timeout=10)

    def charge_together(charge, **request):
        in_flight.wait()
        return charge()

    use_gateway(ScriptedGateway(charge_together, max_concurrency=4))
    result = todo_list_work(list_name="payments_to_issue", batch=4)
    assert (result.worked, result.failed) == (4, 0)
    charges = InProcessCharge.objects.values("order_id").annotate(n=Count("pk"))
    assert sorted(c["order_id"] for c in charges) == sorted(paid) and {c["n"] for c in charges} == {1}


@pytest.mark.django_db(transaction=True)
def test_a_network_bound_gateways_outcomes_are_recorded_as_they_come(place_orders, use_gateway, wait_until):
    """With a network gateway an outcome does not wait for the batch's last charge: here the
    second charge answers only once the first one's outcome is in the log."""
    [first, second], _ = place_orders(visa=2, declined=0)

    def second_waits_for_the_first(charge, **request):
        if request["order_id"] == second:
            recorded = Event.objects.filter(type="PaymentIssued", correlation_id=first).exists
            wait_until(recorded, timeout=10, message="the first outcome in the log")
        return charge()

    use_gateway(ScriptedGateway(second_waits_for_the_first, max_concurrency=4))
    result = todo_list_work(list_name="payments_to_issue", batch=2)
    assert (result.worked, result.failed) == (2, 0)
    assert Event.objects.filter(type="PaymentIssued").count() == 2


@pytest.mark.django_db(transaction=True)
def test_the_inline_pipeline_pays_per_batch_not_per_item(place_orders, use_gateway, settings):
    use_gateway(ScriptedGateway(max_concurrency=1))  # every query on this connection
    settings.TODO_LEASE_SECONDS = 600  # no heartbeat renewal on a slow machine: count only the batch's
    with CaptureQueriesContext(connection) as ctx:
        place_orders(visa=100, declined=0)
        todo_lists_work()
    assert Order.objects.filter(status="confirmed").count() == 100
    # Every statement of place -> pay -> confirm, the gateway's included (one connection here),
    # but transaction control, which the test's own transaction turns into savepoints, and a read's
    # second look when a transaction elsewhere on a busy server ended during it (the server's noise).
    control = re.compile(r"^(BEGIN|COMMIT|ROLLBACK|SAVEPOINT|RELEASE SAVEPOINT|ROLLBACK TO SAVEPOINT)\b")
    every = [
        q["sql"]
        for q in ctx.captured_queries
        if not control.match(q["sql"]) and not q["sql"].startswith(READ_AGAIN)
    ]

    def count(pattern: str) -> int:
        return sum(1 for s in every if re.search(pattern, s))

    # The charts' rollup costs one statement per list batch that changed items, beside its upsert
    # (todolists/rollup.py): counted here, and apart from the per-order budget below.
    rollup = r'^INSERT INTO "todolists_todolistrollup"'
    item_upserts = r'^(\d+ times: )?INSERT INTO "todolists_todoitem"'  # SQLite's executemany: "N times: "
    assert 0 < count(rollup) <= count(item_upserts)
    sql = [s for s in every if not re.search(rollup, s)]

    # payments_to_issue and orders_to_confirm: batches of 10, 20, then 40 while they come back full
    batches = 5 + 5
    renewals = count(r'^UPDATE "todolists_todoitem" SET "claimed_until"')
    # One statement renews a whole batch (a list may show its items in two parts when a reader is
    # held back by a running transaction elsewhere on the server: then one more, smaller batch).
    assert batches <= renewals <= batches + 2
    # One re-read per batch, and per payment batch one check of its starts against cancellations.
    checks = count(r'"eventstore_event"\."correlation_id" IN .* AND "eventstore_event"\."type" IN')
    assert count(r'"eventstore_event"\."correlation_id" IN') - checks == renewals
    assert checks == 5
    # The budget of issue 16, every statement counted, the rollup's too (SQLite: see below).
    assert len(every) / 100 <= (10 if connection.vendor == "postgresql" else 13)
    per_order = len(sql) / 100
    # 41 before batching, 17 before one-statement claims and charges, 10 before growing batches;
    # what remains is listed in the README (Cost per order).
    # SQLite's append reads the stream's version before its insert: one more statement per event.
    assert per_order <= (9 if connection.vendor == "postgresql" else 12), collections.Counter(
        re.sub(r"\s+", " ", s)[:50] for s in sql
    ).most_common(12)


def test_a_confirmation_waits_for_one_payment_turn_not_for_the_payment_backlog(place_orders, monkeypatch):
    from todolists import runner

    place_orders(visa=100, declined=0)
    turns = []
    real_work = runner.todo_list_work
    monkeypatch.setattr(runner, "todo_list_work", lambda **kw: turns.append(r := real_work(**kw)) or r)
    todo_lists_work()
    assert Order.objects.filter(status="confirmed").count() == 100
    paid_first = 0
    for turn in turns:
        if turn.list_name == "orders_to_confirm" and turn.worked:
            break
        paid_first += turn.worked if turn.list_name == "payments_to_issue" else 0
    assert 0 < paid_first <= runner.TURN_ITEMS  # one payment turn, then the confirmations it opened


def test_a_command_nudges_the_lists_it_opened_once_it_commits(
    use_broker, settings, monkeypatch, django_capture_on_commit_callbacks
):
    settings.TODO_NUDGE = True
    enqueued = []
    use_broker(lambda func, *args, **kwargs: enqueued.append((func, *args)))
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        order_id = PlacedOrderFactory()
        assert enqueued == []  # nothing before the commit: a worker could not see the order yet
    assert enqueued == [("todolists.tasks.work_lists", ["payments_to_issue"])]
    enqueued.clear()
    projections_catch_up()
    with django_capture_on_commit_callbacks(execute=True):
        payment_issue(order_id=order_id)
    assert enqueued == [("todolists.tasks.work_lists", ["orders_to_confirm"])]


@pytest.mark.django_db(transaction=True)
def test_a_burst_of_appends_queues_one_nudge_per_list_until_its_task_starts(
    use_broker, place_orders, settings, monkeypatch
):
    from todolists import tasks

    settings.TODO_NUDGE = True
    settings.TODO_NUDGE_COALESCE_SECONDS = 3600  # however slow the machine places the thirty
    enqueued: list = []
    use_broker(lambda fn, names, **kw: enqueued.append(names))
    place_orders(visa=30, declined=0)
    assert enqueued == [["payments_to_issue"]]  # not thirty tasks in the broker's queue
    monkeypatch.setattr(tasks, "todo_lists_work", lambda **kwargs: [])
    tasks.work_lists(["payments_to_issue"])  # the task starts: appends from now on nudge again
    place_orders(visa=1, declined=0)
    assert enqueued == [["payments_to_issue"], ["payments_to_issue"]]


@pytest.mark.django_db(transaction=True)
def test_a_watching_task_stops_when_what_it_waits_for_cannot_be_claimed(place_orders, monkeypatch):
    """A dead worker's item whose order another projection is halted on is claimable by lease but
    left alone by the claim: the task must not poll, re-work and re-queue itself for it forever."""
    import dataclasses
    import time

    from eventstore.projections import registry
    from todolists import runner

    [stuck], _ = place_orders(visa=1, declined=0)
    payments = registry.get("payments")

    def broken(batch):
        if any(e.correlation_id == stuck for e in batch.events):
            raise RuntimeError("bug in the payments read model")
        payments.apply(batch)

    monkeypatch.setitem(registry._items, "payments", dataclasses.replace(payments, apply=broken))
    projections_catch_up()  # the payments projection halts on the order
    TodoItem.objects.filter(key=stuck).update(
        claimed_by="dead-host:1", claimed_until=timezone.now() - datetime.timedelta(seconds=1)
    )
    nudged, rounds = [], collections.Counter()
    monkeypatch.setattr(runner, "todo_lists_nudge", lambda **kwargs: nudged.append(kwargs))
    monkeypatch.setattr(runner, "work_deadline", lambda: time.monotonic() + 20)
    real_work = runner.todo_list_work
    monkeypatch.setattr(
        runner, "todo_list_work", lambda **kw: rounds.update([kw["list_name"]]) or real_work(**kw)
    )
    results = todo_lists_work(names=["payments_to_issue"], take_over=True, worker="live-host:2")
    assert sum(r.worked for r in results) == 0 and not InProcessCharge.objects.exists()
    assert rounds["payments_to_issue"] <= 2 and nudged == []  # no polling loop, no task re-queued


def test_a_crash_between_a_batchs_charges_and_its_outcomes_charges_no_one_twice(place_orders, monkeypatch):
    """A batch appends its outcomes together, after its charges: a worker killed in between
    leaves charges without outcomes, and the retry finds each charge under its order's key."""
    from payments import commands

    paid, _ = place_orders(visa=3, declined=0)
    real_append = commands.events_append

    def killed_before_the_outcomes(**kwargs):
        if any(isinstance(a.event, PaymentIssued) for a in kwargs["appends"]):
            raise KeyboardInterrupt("worker killed")
        return real_append(**kwargs)

    monkeypatch.setattr(commands, "events_append", killed_before_the_outcomes)
    with pytest.raises(KeyboardInterrupt):
        commands.payments_issue(cases=correlations_read(correlation_ids=paid))
    assert InProcessCharge.objects.count() == 3 and not Event.objects.filter(type="PaymentIssued").exists()

    monkeypatch.setattr(commands, "events_append", real_append)
    outcomes = commands.payments_issue(cases=correlations_read(correlation_ids=paid))
    assert outcomes == {order_id: Outcome.ISSUED for order_id in paid}
    charges = InProcessCharge.objects.values("order_id").annotate(n=Count("pk"))
    assert sorted(c["order_id"] for c in charges) == sorted(paid) and {c["n"] for c in charges} == {1}
    started = Event.objects.filter(type="PaymentStarted").values("correlation_id").annotate(n=Count("pk"))
    assert {s["n"] for s in started} == {1}, "a payment started twice"

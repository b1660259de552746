"""A reader held back by an older write transaction that is still running: a wake-up is never lost,
and an outcome it cannot see yet is not worked again and again."""

import contextlib
import time
from collections.abc import Iterator

import psycopg
import pytest

from eventstore.projections import projections_catch_up
from payments import todo as payments_todo
from payments.commands import PAYMENTS_LIST
from payments.models import InProcessCharge
from tests.conftest import database_url_for_subprocess, requires_postgres
from tests.factories import PlacedOrderFactory
from todolists import nudge, tasks
from todolists.leases import worker_id
from todolists.models import PendingNudge, TodoItem
from todolists.runner import todo_list_work

pytestmark = [
    requires_postgres("readers are held back by running transactions only on PostgreSQL"),
    pytest.mark.django_db(transaction=True),
]


@contextlib.contextmanager
def write_transaction_open() -> Iterator[None]:
    """Another session of this database holds a write transaction (a transaction id) open: what
    commits after it began stays invisible to readers until it ends."""
    with psycopg.connect(database_url_for_subprocess()) as other:
        other.execute("SELECT pg_current_xact_id()")
        yield
        other.commit()


def test_a_held_back_nudge_waits_for_what_woke_it_and_works_it(
    settings, monkeypatch, run_in_thread, wait_until, use_broker
):
    settings.TODO_NUDGE = True
    enqueued: list = []
    use_broker(lambda fn, names, **kw: enqueued.append(names))
    looked = []
    bound = nudge.log_visible_below
    monkeypatch.setattr(nudge, "log_visible_below", lambda: looked.append(1) or bound())
    done: list[str] = []
    with write_transaction_open():
        PlacedOrderFactory()
        assert enqueued == [[PAYMENTS_LIST]]
        run_in_thread(lambda: done.append(tasks.work_lists([PAYMENTS_LIST])))
        wait_until(lambda: len(looked) >= 3 or bool(done), message="the nudge task to look at the bound")
        # Working blind, it would have seen nothing: "0 worked", and the order left to the sweep.
        assert done == []
    wait_until(lambda: bool(done), message="the nudge task to end")
    assert done[0].startswith(f"{PAYMENTS_LIST}: 1 worked, 0 failed")
    assert InProcessCharge.objects.count() == 1


def test_a_held_back_nudge_hands_itself_on_at_its_deadline(settings, monkeypatch, use_broker):
    settings.TODO_NUDGE = True
    monkeypatch.setattr(nudge, "VISIBLE_WAIT_SECONDS", 0.5)
    enqueued: list = []
    use_broker(lambda fn, names, **kw: enqueued.append(names))
    with write_transaction_open():
        PlacedOrderFactory()
        result = tasks.work_lists([PAYMENTS_LIST])
        assert result.startswith("held back")
        # A fresh task carries the same trigger: the wake-up is not dropped.
        assert enqueued == [[PAYMENTS_LIST], [PAYMENTS_LIST]]
        assert PendingNudge.objects.get().trigger_tx_id > 0
    assert InProcessCharge.objects.count() == 0


def on_list(order_id: str, status: str) -> bool:
    projections_catch_up()
    return TodoItem.objects.filter(list_name=PAYMENTS_LIST, key=order_id, status=status).exists()


def test_an_outcome_recorded_but_not_yet_visible_is_not_claimed_again_until_it_is(
    place_orders, monkeypatch, wait_until
):
    [[order_id], _] = place_orders(visa=1, declined=0)
    wait_until(lambda: on_list(order_id, TodoItem.Status.OPEN), message="the item on the list")
    calls: list[str] = []
    issue = payments_todo.payments_issue
    monkeypatch.setattr(
        payments_todo, "payments_issue", lambda **kw: calls.extend(kw["cases"]) or issue(**kw)
    )
    with write_transaction_open():
        result = todo_list_work(list_name=PAYMENTS_LIST, max_items=50, deadline=time.monotonic() + 20)
        # Released, the item would be claimed and worked again at once, up to max_items.
        assert (result.worked, calls) == (1, [order_id])
        item = TodoItem.objects.get(list_name=PAYMENTS_LIST, key=order_id)
        assert (item.status, item.claimed_by) == (TodoItem.Status.OPEN, worker_id())
    wait_until(lambda: on_list(order_id, TodoItem.Status.DONE), message="the outcome on the list")
    assert InProcessCharge.objects.count() == 1


def test_a_nudge_task_follows_its_outcomes_to_the_lists_they_open(place_orders):
    """The payment's outcome opens the confirmation: the same task works it, no broker round trip."""
    from orders.models import Order

    [[order_id], _] = place_orders(visa=1, declined=0)
    result = tasks.work_lists([PAYMENTS_LIST])
    assert f"{PAYMENTS_LIST}: 1 worked" in result and "orders_to_confirm: 1 worked" in result
    projections_catch_up()
    assert Order.objects.get(order_id=order_id).status == "confirmed"

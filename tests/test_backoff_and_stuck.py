"""The backoff's cap, and what makes a list stuck: an item *due* for longer than the threshold
(not merely open: an item waiting out its backoff is not due)."""

import datetime

import pytest
from django.utils import timezone

from eventstore.projections import projections_catch_up
from tests.factories import PlacedOrderFactory
from todolists.models import TodoItem
from todolists.runner import backoff
from todolists.ui.status import todo_lists_status

HOUR = datetime.timedelta(hours=1)


def test_the_backoff_doubles_and_is_capped_at_one_hour(settings):
    settings.TODO_BACKOFF_SECONDS = 5
    assert [backoff(attempt=n).total_seconds() for n in (1, 2, 3)] == [5, 10, 20]
    assert backoff(attempt=11) == HOUR  # 5 * 2**10 s would be 85 min
    assert backoff(attempt=40) == HOUR


def _payments_list():
    return next(s for s in todo_lists_status() if s.name == "payments_to_issue")


@pytest.fixture
def two_items(no_nudge, settings):
    settings.TODO_STUCK_AFTER_SECONDS = 3600
    keys = [PlacedOrderFactory(), PlacedOrderFactory()]
    projections_catch_up()
    items = TodoItem.objects.filter(list_name="payments_to_issue")

    def set_times(key, *, opened_ago, due_in=None):
        now = timezone.now()
        items.filter(key=key).update(
            opened_at=now - opened_ago, next_attempt_at=None if due_in is None else now + due_in
        )

    return keys, set_times


@pytest.mark.django_db(transaction=True)
def test_a_list_is_stuck_only_once_an_item_has_been_due_longer_than_the_threshold(two_items):
    (first, second), set_times = two_items
    set_times(first, opened_ago=datetime.timedelta(seconds=5))
    set_times(second, opened_ago=datetime.timedelta(seconds=1))
    assert not _payments_list().stuck  # due for 5 s, threshold an hour

    set_times(first, opened_ago=2 * HOUR)
    status = _payments_list()
    assert status.stuck and status.oldest_due_age_seconds > 7000


@pytest.mark.django_db(transaction=True)
def test_an_old_item_waiting_out_its_backoff_does_not_make_its_list_stuck(two_items):
    (first, second), set_times = two_items
    # Opened two hours ago, retried then, due again in an hour: not due, so not waiting on anyone.
    set_times(first, opened_ago=2 * HOUR, due_in=HOUR)
    set_times(second, opened_ago=datetime.timedelta(seconds=1))
    assert not _payments_list().stuck
    # Opened two hours ago, due for 30 min only (its retry time passed then): still not stuck.
    set_times(first, opened_ago=2 * HOUR, due_in=-HOUR / 2)
    status = _payments_list()
    assert not status.stuck and 1700 < status.oldest_due_age_seconds < 1900

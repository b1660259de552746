"""Leases are measured on the database's clock: a worker whose own clock is off by an hour neither
takes a live lease nor hands out one that is already over."""

import datetime

import pytest
from django.utils import timezone

from eventstore.projections import projections_catch_up
from tests.factories import PlacedOrderFactory
from todolists.leases import todo_items_claim, todo_items_renew

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("skew", [-3600, 3600], ids=["application clock an hour behind", "an hour ahead"])
def test_a_live_lease_holds_whatever_the_application_clock_says(no_nudge, monkeypatch, skew):
    order_id = PlacedOrderFactory()
    projections_catch_up()
    real_now = timezone.now
    monkeypatch.setattr(timezone, "now", lambda: real_now() + datetime.timedelta(seconds=skew))

    [mine] = todo_items_claim(list_name="payments_to_issue", worker="a", limit=10)
    assert mine.key == order_id
    assert todo_items_claim(list_name="payments_to_issue", worker="b", limit=10) == []
    assert todo_items_renew(list_name="payments_to_issue", keys=[order_id], worker="a") == 1
    assert todo_items_claim(list_name="payments_to_issue", worker="b", limit=10) == []

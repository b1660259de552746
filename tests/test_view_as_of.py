"""A past moment: every list as it was at a position of the log, folded from the log alone."""

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from eventstore.projections import projections_catch_up
from eventstore.store import log_head
from todolists.models import TodoItem, TodoListRollup
from todolists.ui.as_of import todo_lists_now

pytestmark = pytest.mark.django_db(transaction=True)


def as_of(moment: str) -> dict:
    out = StringIO()
    call_command("todo_status", "--as-of", moment, "--json", stdout=out)
    return json.loads(out.getvalue())


def test_as_of_a_past_position_equals_the_lists_recorded_then(seeded_process, place_orders, settings):
    projections_catch_up()
    then = [x.as_dict() for x in todo_lists_now()]
    position = log_head()
    assert {x["name"]: (x["open"], x["parked"]) for x in then}["payments_to_issue"] == (3, 1)
    live_before = TodoItem.objects.count()
    # More happens: new orders, worked; the parked item retried.
    place_orders(2, 1)
    call_command("process_todos")
    call_command("process_todos")
    projections_catch_up()
    assert [x.as_dict() for x in todo_lists_now()] != then
    with CaptureQueriesContext(connection) as queries:
        past = as_of(str(position))
    assert past["position"] == position
    assert past["lists"] == then
    assert TodoItem.objects.count() > live_before  # the live rows are the present, untouched
    # So is the lists' rollup: the fold writes its counts to a shadow, never to the live buckets
    # (which a live catch-up would otherwise wait on until the fold rolls back).
    live_rollup = f'INSERT INTO "{TodoListRollup._meta.db_table}" '
    assert not [q for q in queries.captured_queries if q["sql"].startswith(live_rollup)]
    # At the start of the log every list is empty.
    assert all(x["open"] == 0 for x in as_of("0")["lists"])


def test_as_of_refuses_what_is_not_a_moment():
    with pytest.raises(CommandError, match="neither a log position nor an ISO time"):
        call_command("todo_status", "--as-of", "yesterday")

"""The swap: under the live checkpoint's lock the shadow catches up with what was appended while it
was built, so the rows swapped in and the checkpoint moved with them miss nothing."""

import pytest

from eventstore.models import ProjectionCheckpoint
from eventstore.projections import projection_catch_up, projection_replay
from eventstore.store import event_append
from tests.conftest import Applied, ThingHappened

pytestmark = pytest.mark.django_db(transaction=True)


def test_events_appended_after_the_shadow_was_built_are_in_the_swapped_rows(applied_projection):
    applied_projection.poisoned = False
    for i in range(10):
        event_append(stream_id=f"s-{i % 2}", events=[ThingHappened(n=i)], expected_version=None)
    projection_catch_up(name="test_applied")
    late = []

    def after_each_batch(position: int) -> None:
        # One batch builds the whole shadow: this runs once it is built, before the swap's lock.
        if not late:
            late.extend(event_append(stream_id="late", events=[ThingHappened(n=99)], expected_version=None))

    result = projection_replay(name="test_applied", batch_size=5000, progress=after_each_batch)

    assert not result.error and result.applied == 11
    assert Applied.objects.filter(position=late[0].position).exists()
    assert Applied.objects.count() == 11
    assert ProjectionCheckpoint.objects.get(name="test_applied").position == late[0].position

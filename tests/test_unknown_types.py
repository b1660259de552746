"""An operator acknowledges an event type no installed app registers: recorded as an event, after
which its events no longer count against health (until then the verdict names them)."""

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from eventstore.models import Event
from eventstore.projections import unregistered_events
from todolists.ui.verdict import process_verdict

pytestmark = pytest.mark.django_db


def _legacy_event(n: int) -> None:
    Event.objects.create(
        stream_id="legacy", stream_version=n, type="LegacyThing", data={}, recorded_at=timezone.now()
    )


def test_an_acknowledged_unknown_type_no_longer_counts_against_health_and_the_acknowledgement_is_an_event():
    _legacy_event(1)
    assert unregistered_events() == {"LegacyThing": 1}
    assert any("LegacyThing" in reason for reason in process_verdict().reasons)

    call_command("event_type_acknowledge", "LegacyThing", "--reason", "retired in 2019", "--actor", "ops:ann")

    assert unregistered_events() == {}
    assert not any("LegacyThing" in reason for reason in process_verdict().reasons)
    recorded = Event.objects.get(type="EventTypeAcknowledged")
    assert (recorded.actor, recorded.data) == (
        "ops:ann",
        {"type_name": "LegacyThing", "reason": "retired in 2019"},
    )
    _legacy_event(2)  # more of them later: still acknowledged
    assert unregistered_events() == {}


def test_another_unknown_type_still_counts():
    _legacy_event(1)
    Event.objects.create(
        stream_id="other", stream_version=1, type="OtherThing", data={}, recorded_at=timezone.now()
    )
    call_command("event_type_acknowledge", "LegacyThing", "--reason", "retired")
    assert unregistered_events() == {"OtherThing": 1}


@pytest.mark.parametrize(
    "args, reason",
    [
        (["LegacyThing", "--reason", "  "], "a reason is required"),
        (["OrderPlaced", "--reason", "x"], "is a registered event type"),
        (["NeverSeen", "--reason", "x"], "the log holds no event of type 'NeverSeen'"),
    ],
)
def test_acknowledging_is_refused_for_bad_input_and_appends_nothing(args, reason):
    _legacy_event(1)
    with pytest.raises(CommandError, match=reason):
        call_command("event_type_acknowledge", *args)
    assert Event.objects.count() == 1


def test_acknowledging_twice_is_refused():
    _legacy_event(1)
    call_command("event_type_acknowledge", "LegacyThing", "--reason", "retired")
    with pytest.raises(CommandError, match="already acknowledged"):
        call_command("event_type_acknowledge", "LegacyThing", "--reason", "again")
    assert Event.objects.filter(type="EventTypeAcknowledged").count() == 1

"""Events of a type no installed app registers: reported until an operator acknowledges the type.

The acknowledgement is an event (EventTypeAcknowledged), so it has an actor and a reason, and the
set of acknowledged types is read from the log (one indexed query), never kept elsewhere.
"""

from __future__ import annotations

from django.db import transaction

from eventstore.events import EventTypeAcknowledged, registered_types
from eventstore.models import Event
from eventstore.store import event_append, log_read

STREAM = "eventstore-unknown-types"


class AcknowledgeRefused(ValueError):
    """The acknowledgement was refused; the message says why. Nothing was appended."""


def acknowledged_types() -> set[str]:
    events = (e.event for e in log_read(types=[EventTypeAcknowledged.event_type], limit=1_000_000))
    return {e.type_name for e in events if isinstance(e, EventTypeAcknowledged)}


def event_type_acknowledge(*, type_name: str, reason: str, actor: str) -> None:
    """Record that events of `type_name` are known to be read by no projection."""
    reason = reason.strip()
    if not reason:
        raise AcknowledgeRefused("a reason is required: it stays in the log beside the acknowledgement")
    if type_name in registered_types():
        raise AcknowledgeRefused(f"{type_name} is a registered event type; its projections read it")
    if not Event.objects.filter(type=type_name).exists():
        raise AcknowledgeRefused(f"the log holds no event of type {type_name!r}")
    with transaction.atomic():
        if type_name in acknowledged_types():
            raise AcknowledgeRefused(f"{type_name} is already acknowledged")
        event_append(
            stream_id=STREAM,
            events=[EventTypeAcknowledged(type_name=type_name, reason=reason)],
            expected_version=None,
            actor=actor,
        )

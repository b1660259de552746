"""Parked events as rows: what a catch-up or a rebuild writes when it parks a business case.

A `Parking` is one event a projection did not apply because its business case (correlation id)
is parked: the case's first failing event (with its error) or one queued behind it (no error).
The rows live in `ParkedEvent`; the checkpoint keeps a copy of the parked cases (`parked`), read
under its lock, so a healthy catch-up needs no extra query to know which events to queue.
"""

from __future__ import annotations

import dataclasses
import datetime

from django.utils import timezone

from eventstore.models import ParkedEvent, ProjectionCheckpoint
from eventstore.record import RecordedEvent


@dataclasses.dataclass(frozen=True)
class Parking:
    recorded: RecordedEvent
    error: str = ""
    """Why it failed; empty for an event queued behind its case's first."""

    @property
    def case(self) -> str:
        return self.recorded.correlation_id


def error_text(error: Exception) -> str:
    return f"{type(error).__name__}: {error}"[:2000]


def _row(
    projection: str, parking: Parking, parked_at: datetime.datetime | None = None, attempts: int = 1
) -> ParkedEvent:
    recorded = parking.recorded
    return ParkedEvent(
        projection=projection,
        position=recorded.position,
        tx_id=recorded.tx_id,
        correlation_id=recorded.correlation_id,
        type=recorded.type,
        error=parking.error,
        parked_at=parked_at or timezone.now(),
        attempts=attempts,
    )


def parked_rows_write(*, checkpoint: ProjectionCheckpoint, parkings: list[Parking]) -> None:
    """Record parkings of the projection `checkpoint` names (in its locked transaction); the
    caller saves the checkpoint, whose `parked` gains their cases."""
    if not parkings:
        return
    ParkedEvent.objects.bulk_create([_row(checkpoint.name, p) for p in parkings], ignore_conflicts=True)
    checkpoint.parked = sorted({*checkpoint.parked, *(p.case for p in parkings)})


def parked_rows_replace(*, checkpoint: ProjectionCheckpoint, parkings: list[Parking]) -> None:
    """A rebuild's parkings in place of the live ones (the swap, under the checkpoint's lock). An
    event parked before and again keeps when it was first parked and its attempts."""
    live = ParkedEvent.objects.filter(projection=checkpoint.name)
    kept = {position: (at, n) for position, at, n in live.values_list("position", "parked_at", "attempts")}
    live.delete()
    ParkedEvent.objects.bulk_create(
        [_row(checkpoint.name, p, *kept.get(p.recorded.position, (None, 1))) for p in parkings]
    )
    checkpoint.parked = sorted({p.case for p in parkings})

"""The projections' operator API: their status, the business cases they are halted or parked on,
events no projection can read, and the way past a poison event that halted a projection as a whole
(a parked business case's way out is eventstore/parked_cases.py). Declaring a projection is
eventstore/projection.py, catching up eventstore/catchup.py, rebuilding eventstore/replay.py;
their public names are here too, so apps import projections from one place.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from django.conf import settings
from django.db import models, transaction

from eventstore.backends import backend
from eventstore.catchup import CatchUpResult, checkpoint_locked, projection_catch_up, projections_catch_up
from eventstore.events import ProjectionEventSkipped, registered_types
from eventstore.models import Event, ParkedEvent, ProjectionCheckpoint
from eventstore.projection import (
    Batch,
    Change,
    Derived,
    Envelope,
    HandlersByName,
    Projection,
    Row,
    RowHandler,
    Table,
    registry,
    row_projection,
)
from eventstore.replay import projection_replay
from eventstore.store import event_append, log_head, log_held_back

__all__ = [
    "Batch",
    "CatchUpResult",
    "Change",
    "Derived",
    "Envelope",
    "HandlersByName",
    "Projection",
    "ProjectionStatus",
    "Row",
    "RowHandler",
    "SkipRefused",
    "Table",
    "held_correlations",
    "projection_catch_up",
    "projection_replay",
    "projection_skip",
    "projection_status",
    "projections_catch_up",
    "registry",
    "row_projection",
    "unregistered_events",
]


# --- status --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ProjectionStatus:
    name: str
    position: int
    head: int
    lag: int
    halted: bool
    error_position: int | None
    error_type: str
    error_message: str
    error_count: int
    skipped: int = 0
    """Events an operator told this projection to pass over (ProjectionEventSkipped)."""
    held_back_seconds: float | None = None
    """Age of the oldest running write transaction, which readers cannot read past (PostgreSQL)."""
    held_back_pid: int | None = None
    parked: int = 0
    """Business cases parked for this projection (eventstore/catchup.py)."""

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def projection_status(*, name: str | None = None) -> list[ProjectionStatus]:
    names = [registry.get(name).name] if name else registry.names()
    head = log_head()
    rows = ProjectionCheckpoint.objects.in_bulk(names)
    held = log_held_back()
    # Reported past a threshold: a transaction open for a few milliseconds is normal traffic.
    threshold = getattr(settings, "EVENTSTORE_HELD_BACK_AFTER_SECONDS", 5.0)
    held_seconds, held_pid = held if held and held[0] >= threshold else (None, None)
    result = []
    for n in names:
        cp = rows.get(n) or ProjectionCheckpoint(name=n)
        result.append(
            ProjectionStatus(
                name=n,
                position=cp.position,
                head=head,
                lag=max(head - cp.position, 0),
                halted=cp.halted,
                error_position=cp.error_position,
                error_type=cp.error_type,
                error_message=cp.error_message,
                error_count=cp.error_count,
                skipped=len(cp.skipped),
                held_back_seconds=round(held_seconds, 1) if held_seconds is not None else None,
                held_back_pid=held_pid,
                parked=len(cp.parked),
            )
        )
    return result


def held_correlations() -> set[str]:
    """The business cases automations leave alone: those a projection is halted on or has parked
    (until an operator retries or skips them). One query."""
    halted_at = ProjectionCheckpoint.objects.filter(error_position__isnull=False).values("error_position")
    halted = (
        Event.objects.filter(position__in=halted_at)
        .exclude(correlation_id="")
        .order_by()  # no ORDER BY inside a UNION (SQLite refuses it)
        .values_list("correlation_id")
    )
    parked = ParkedEvent.objects.order_by().values_list("correlation_id")
    return {c for (c,) in halted.union(parked)}


def unregistered_events() -> dict[str, int]:
    """Events in the log whose type no installed app registers, counted by type. They are never
    applied by any projection, so they are reported instead of ignored, until an operator
    acknowledges the type (eventstore/unknown_types.py)."""
    known = set(registered_types())
    types = backend().distinct_types()
    from eventstore.unknown_types import acknowledged_types  # builds on this module

    unknown = sorted(types - known)
    if unknown:  # only then: a healthy log costs no extra query
        unknown = sorted(set(unknown) - acknowledged_types())
    if not unknown:
        return {}
    counts = Event.objects.filter(type__in=unknown).values_list("type").annotate(n=models.Count("pk"))
    return dict(counts)


# --- the way past a poison event ------------------------------------------------------------------------


class SkipRefused(ValueError):
    """projection_skip was refused; the message says why. Nothing was appended."""


def projection_skip(
    *, name: str, position: int, reason: str, actor: str, force: bool = False
) -> CatchUpResult:
    """Record that projection `name` passes over the event at `position`, then catch it up.

    Refused unless the projection is halted at that event (or `force`), so an operator skips
    only what actually stopped it. The skip is an event, so a replay repeats it.
    """
    projection = registry.get(name)
    reason = reason.strip()
    if not reason:
        raise SkipRefused("a reason is required: it stays in the log beside the skip")
    target = Event.objects.filter(position=position).first()
    if target is None:
        raise SkipRefused(f"there is no event at position {position}")
    if target.type not in projection.types:
        raise SkipRefused(f"{name} does not handle {target.type} events (position {position})")
    with transaction.atomic():
        checkpoint = checkpoint_locked(name)
        if position in checkpoint.skipped:
            raise SkipRefused(f"{name} already skips position {position}")
        halted_at = checkpoint.error_position
        if halted_at != position and not force:
            state = f"halted at position {halted_at}" if halted_at else "not halted"
            raise SkipRefused(f"{name} is {state}, not at position {position}; use --force to skip it anyway")
        event_append(
            stream_id=f"projection-{name}",
            events=[ProjectionEventSkipped(projection=name, position=position, reason=reason)],
            expected_version=None,
            correlation_id=target.correlation_id,
            causation_id=str(position),
            actor=actor,
        )
        # The checkpoint's copy of the log's skips, so a catch-up needs no extra query.
        checkpoint.skipped = sorted({*checkpoint.skipped, position})
        checkpoint.save(update_fields=["skipped"])
    return projection_catch_up(name=name)

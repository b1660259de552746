"""Getting every projection past one poison event with one decision.

A poison event (one no handler can apply) halts each projection that reads its type. The
operator decides once: one ProjectionEventSkipped per projection halted on it (each an event
with the actor and the reason, so a replay repeats them), then each catches up.
"""

from __future__ import annotations

from eventstore.models import ProjectionCheckpoint
from eventstore.projections import CatchUpResult, SkipRefused, projection_skip


def projections_halted_at(*, position: int) -> list[str]:
    return list(
        ProjectionCheckpoint.objects.filter(error_position=position)
        .order_by("name")
        .values_list("name", flat=True)
    )


def projections_skip_event(*, position: int, reason: str, actor: str) -> dict[str, CatchUpResult]:
    """Skip the event at `position` for every projection halted on it; {name: its catch-up}.
    Refused (SkipRefused, nothing appended) when no projection is halted there or no reason is given."""
    if not reason.strip():
        raise SkipRefused("a reason is required: it stays in the log beside the skip")
    names = projections_halted_at(position=position)
    if not names:
        raise SkipRefused(f"no projection is halted at event #{position}; nothing to skip")
    return {name: projection_skip(name=name, position=position, reason=reason, actor=actor) for name in names}

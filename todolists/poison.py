"""The way past a poison event from its page: one operator skip for every projection halted on it.

A stand-in until the verdict's own function lands: it loops over the existing per-projection
skip (each skip is its own event, so a replay repeats them)."""

from __future__ import annotations

from eventstore.projections import ProjectionStatus, SkipRefused, projection_skip, projection_status


def projections_halted_at(*, position: int) -> list[ProjectionStatus]:
    return [p for p in projection_status() if p.halted and p.error_position == position]


def event_skip_everywhere(*, position: int, reason: str, actor: str) -> list[str]:
    """Record a skip of the event at `position` for every projection halted on it; the names.
    Raises SkipRefused when none is halted there (nothing recorded)."""
    halted = projections_halted_at(position=position)
    if not halted:
        raise SkipRefused(f"no projection is halted at event #{position}; nothing to skip")
    for p in halted:
        projection_skip(name=p.name, position=position, reason=reason, actor=actor)
    return [p.name for p in halted]

"""What the poison event's page shows: the projections halted on it, with their errors. The skip
itself is eventstore's one decision for all of them (eventstore/poison.py)."""

from __future__ import annotations

from eventstore.projections import ProjectionStatus, projection_status


def projections_halted_at(*, position: int) -> list[ProjectionStatus]:
    return [p for p in projection_status() if p.halted and p.error_position == position]

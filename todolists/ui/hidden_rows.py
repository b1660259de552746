"""What a halted or lagging projection hides, said on the page whose rows come from it."""

from __future__ import annotations

from eventstore.projections import ProjectionStatus, projection_status
from todolists.lists import registry


def hidden_rows_notice(status: ProjectionStatus, *, rows: str) -> str:
    """One sentence for a projection that is behind the log, "" when it is caught up. `rows` names
    what the page lists, e.g. "orders placed"."""
    if status.halted:
        return (
            f"The {status.name} projection is halted at event #{status.error_position} "
            f"({status.error_type}): {rows} after it are not shown here until it moves on."
        )
    if status.parked:
        return (
            f"The {status.name} projection has parked {status.parked} business case"
            f"{'s' if status.parked != 1 else ''}: the {rows} for them are not shown here until an "
            "operator retries or skips them (the dashboard's parked cases)."
        )
    if status.lag:
        return (
            f"The {status.name} projection is {status.lag} event{'s' if status.lag != 1 else ''} behind "
            f"the log: the newest {rows} may not be shown here yet."
        )
    return ""


def projections_notices(*, names: list[str], rows: str) -> list[tuple[ProjectionStatus, str]]:
    """(status, sentence) for each named projection that hides rows: one read of the checkpoints."""
    wanted = set(names)
    found = [(p, hidden_rows_notice(p, rows=rows)) for p in projection_status() if p.name in wanted]
    return [(p, text) for p, text in found if text]


def list_projection_names(list_name: str | None) -> list[str]:
    """The projections behind the item list page: the filtered list's, or every list's."""
    if list_name in registry.names():
        return [registry.get(list_name).projection_name]
    return [t.projection_name for t in registry.all()]

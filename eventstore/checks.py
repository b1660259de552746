"""System checks: a projection may only handle registered event types, and every registered type
must be handled somewhere. They run with `manage.py check`, the test session and the cluster's
start, so a misspelt type name fails loudly instead of leaving items open."""

from django.core import checks

from eventstore.events import (
    EventTypeAcknowledged,
    ProjectionEventSkipped,
    ProjectionRebuilt,
    registered_types,
)
from eventstore.projections import registry


@checks.register()
def projections_handle_registered_types(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    known = registered_types()
    errors: list[checks.CheckMessage] = [
        checks.Error(
            f"Projection {projection.name!r} handles {name!r}, which is not a registered event type.",
            hint=f"Registered types: {', '.join(sorted(known))}.",
            id="eventstore.E001",
        )
        for projection in registry.all()
        for name in projection.handles
        if name not in known
    ]
    # The engine itself honours skips and acknowledgements; a rebuild's record is for operators
    # (the log is its view); every other type needs a projection that reads it.
    handled = {name for p in registry.all() for name in p.handles}
    handled |= {e.event_type for e in (ProjectionEventSkipped, ProjectionRebuilt, EventTypeAcknowledged)}
    errors += [
        checks.Error(
            f"Event type {name!r} is registered but no projection handles it: it would be recorded "
            "and never read.",
            hint="Handle it in a projection or a TODO list (opened_by / closed_by), or remove the type.",
            id="eventstore.E002",
        )
        for name in sorted(set(known) - handled)
    ]
    return errors

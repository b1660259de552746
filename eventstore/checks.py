"""System checks: a projection may only handle registered event types, and every registered type
must be handled somewhere. They run with `manage.py check`, the test session and the cluster's
start, so a forgotten type fails loudly instead of leaving items open."""

from typing import Any

from django.core import checks

from eventstore.events import (
    EventTypeAcknowledged,
    ParkedEventSkipped,
    ProjectionEventSkipped,
    ProjectionRebuilt,
    published_names,
    registered_types,
)
from eventstore.projections import HandlersByName, registry


@checks.register()
def projections_handle_registered_types(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    known = registered_types()
    errors: list[checks.CheckMessage] = [
        checks.Error(
            f"Projection {projection.name!r} handles {cls.__qualname__}, which is not a registered event type.",
            hint="Decorate it with @event_type(name).",
            id="eventstore.E001",
        )
        for projection in registry.all()
        for cls in projection.handles
        if known.get(getattr(cls, "event_type", "")) is not cls
    ]
    errors += [
        checks.Error(
            f"Projection {projection.name!r} handles {name!r}, which is not a registered event type.",
            hint=f"Registered types: {', '.join(sorted(known))}.",
            id="eventstore.E001",
        )
        for projection in registry.all()
        if isinstance(projection.handles, HandlersByName)
        for name in projection.handles.unknown_names()
    ]
    errors += [
        checks.Error(
            f"published({name!r}) names an event type no app registers.",
            hint=f"Registered types: {', '.join(sorted(known))}.",
            id="eventstore.E003",
        )
        for name in published_names()
        if name not in known
    ]
    # The engine itself honours skips and acknowledgements; a rebuild's record is for operators
    # (the log is its view); every other type needs a projection that reads it.
    handled = {name for p in registry.all() for name in p.types}
    handled |= {
        e.event_type
        for e in (ProjectionEventSkipped, ParkedEventSkipped, ProjectionRebuilt, EventTypeAcknowledged)
    }
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

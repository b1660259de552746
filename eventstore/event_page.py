"""What other apps add to an event's admin page, declared: the event store owns the page and knows
no app above it (the import arrows point at it), so an app that can say more about an event (the
TODO items it opened, the business case's story, a skip for a poison event) registers here, from
its admin module or `ready()`, instead of replacing the event store's admin.

- An `EventPanel` is shown on every event's page: its `context(request, event)` is asked once per
  page, and each of its templates is rendered with it into its slot: "tools" (items of the page's
  object tools, top right), "before" (above the event's fields) or "after" (below them).
- An `EventView` is a page of its own under an event, `<position>/<route>/`, named
  `admin:eventstore_event_<name>` (a confirmation that acts on the event, say). The URLs are read
  once, when the URLconf loads: register views before it does (in `ready()` or the admin module).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal

from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.utils.safestring import SafeString

from eventstore.models import Event
from eventstore.registry import Registry

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin

Slot = Literal["tools", "before", "after"]
SLOTS: tuple[Slot, ...] = ("tools", "before", "after")


@dataclasses.dataclass(frozen=True)
class EventPanel:
    name: str
    templates: Mapping[Slot, str]
    """Per slot, the template rendered there with the panel's context (and `event`)."""
    context: Callable[[HttpRequest, Event], Mapping[str, Any]]
    stylesheets: tuple[str, ...] = ()
    """Static paths the page links to for the panel's templates."""


@dataclasses.dataclass(frozen=True)
class EventView:
    name: str
    route: str
    view: Callable[[HttpRequest, Event, ModelAdmin[Event]], HttpResponse]
    """Called with the event, already found (a missing one is the admin's "does not exist"
    redirect), and the event's ModelAdmin (for its site's context and messages). Staff only, as
    every admin page; a view that needs more checks it itself."""


event_panels: Registry[EventPanel] = Registry("event page panel")
event_views: Registry[EventView] = Registry("event page view")


@dataclasses.dataclass(frozen=True)
class EventPageParts:
    """The registered panels rendered for one event, by slot, for the event's change form."""

    tools: list[SafeString]
    before: list[SafeString]
    after: list[SafeString]
    stylesheets: list[str]


def event_page_parts(*, request: HttpRequest, event: Event) -> EventPageParts:
    """Every registered panel rendered for `event`, in the panels' name order (one order for
    every page)."""
    rendered: dict[Slot, list[SafeString]] = {slot: [] for slot in SLOTS}
    stylesheets: list[str] = []
    for panel in event_panels.all():
        context = {**panel.context(request, event), "event": event}
        for slot in SLOTS:
            if template := panel.templates.get(slot):
                rendered[slot].append(render_to_string(template, context, request=request))
        stylesheets += [s for s in panel.stylesheets if s not in stylesheets]
    return EventPageParts(
        tools=rendered["tools"], before=rendered["before"], after=rendered["after"], stylesheets=stylesheets
    )

"""What todolists adds to the event store's event page (eventstore/event_page.py), declared there
rather than by replacing its admin: the business case's story, the TODO items the event opened or
closed, the projections it parked or halted, and the page that skips a poison event for every
projection halted on it. Registered by todolists/admin.py, which the admin's autodiscovery loads."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from eventstore.event_page import EventPanel, EventView
from eventstore.models import Event, ParkedEvent
from eventstore.poison import projections_skip_event
from eventstore.projections import SkipRefused
from todolists.models import TodoItem
from todolists.ui.admin import ReasonForm, log_search_url, story_url
from todolists.ui.poison import projections_halted_at

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin


def event_page_context(request: HttpRequest, event: Event) -> dict[str, Any]:
    items = TodoItem.objects.filter(Q(opened_position=event.pk) | Q(closed_position=event.pk))
    halted = projections_halted_at(position=event.pk)
    parked = list(ParkedEvent.objects.filter(position=event.pk).order_by("projection"))
    story = ""
    if event.correlation_id:
        # A case whose event halted or parked the projections may have no read-model row: its events do.
        story = log_search_url(event.correlation_id) if halted or parked else story_url(event.correlation_id)
    return {
        "story_url": story,
        "story_in_log": bool(halted or parked),
        "halted_here": halted,
        "parked_here": parked,
        "skip_url": reverse("admin:eventstore_event_skip", args=[event.pk]) if halted else "",
        "may_skip": request.user.is_superuser,
        "opened_items": [i for i in items if i.opened_position == event.pk],
        "closed_items": [i for i in items if i.closed_position == event.pk],
    }


todo_event_panel = EventPanel(
    name="todolists",
    templates={
        "tools": "admin/todolists/event/story_link.html",
        "before": "admin/todolists/event/stopped_here.html",
        "after": "admin/todolists/event/leads_to.html",
    },
    context=event_page_context,
    stylesheets=("todolists/debug.css",),
)


def event_skip_confirm_view(
    request: HttpRequest, event: Event, model_admin: ModelAdmin[Event]
) -> HttpResponse:
    """Skip this event for every projection halted on it: confirm with a reason, then record one
    ProjectionEventSkipped per projection. Superusers only, as `projection_skip` needs a shell."""
    if not request.user.is_superuser:
        raise PermissionDenied(
            "Skipping an event is for superusers (it changes what every read model holds)."
        )
    event_url = reverse("admin:eventstore_event_change", args=[event.pk])
    form = ReasonForm(request.POST or None)
    refusal = ""
    if request.method == "POST" and form.is_valid():
        try:
            names = projections_skip_event(
                position=event.pk, reason=form.cleaned_data["reason"], actor=request.user.get_username()
            )
        except SkipRefused as exc:
            refusal = str(exc)
        else:
            model_admin.message_user(request, f"Skipped event #{event.pk} for {', '.join(names)}.")
            return HttpResponseRedirect(event_url)
    context = {
        **model_admin.admin_site.each_context(request),
        "title": f"Skip event #{event.pk} ({event.type})",
        "opts": model_admin.opts,
        "event": event,
        "event_url": event_url,
        "halted_here": projections_halted_at(position=event.pk),
        "form": form,
        "refusal": refusal,
    }
    return TemplateResponse(request, "admin/todolists/event/confirm_skip.html", context)


event_skip_page = EventView(name="skip", route="skip", view=event_skip_confirm_view)

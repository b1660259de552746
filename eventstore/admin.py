import json
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, path
from django.utils.html import format_html

from eventstore.event_page import EventView, event_page_parts, event_views
from eventstore.models import Event, ParkedEvent, ProjectionCheckpoint
from eventstore.projections import projection_catch_up

if TYPE_CHECKING:
    ModelAdmin = admin.ModelAdmin[Any]
else:
    ModelAdmin = admin.ModelAdmin


class ReadOnlyAdmin(ModelAdmin):
    """Projections and the log are never edited by hand: state changes are recorded as events."""

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def record_for_each(
        self,
        request: HttpRequest,
        queryset: QuerySet[Any],
        command: Callable[[Any], object],
        *,
        refused: tuple[type[Exception], ...] = (ValueError,),
    ) -> list[Any]:
        """An admin action's body: run a command that appends an event for each selected row and
        report each refusal with its reason, never a half-run 500. Returns the rows it recorded
        for; the caller says what they are now (no success message when nothing was recorded)."""
        recorded = []
        for obj in queryset:
            try:
                command(obj)
                recorded.append(obj)
            except refused as exc:
                self.message_user(request, f"Refused: {exc}", messages.ERROR)
        return recorded

    def catch_up_and_warn(self, request: HttpRequest, projection_names: Iterable[str]) -> None:
        """Catch the projections an action touched up in this request (one bounded call each), so
        the page after it shows its effect; say which are halted and so show old state."""
        for name in sorted(set(projection_names)):
            if error := projection_catch_up(name=name).error:
                self.message_user(request, f"{name} is halted and shows old state: {error}", messages.WARNING)


def pretty_json(value: object) -> str:
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False))


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    list_display = [
        "position",
        "type",
        "stream_id",
        "stream_version",
        "correlation_id",
        "actor",
        "recorded_at",
    ]
    list_filter = ["type", "actor"]
    search_fields = ["=stream_id", "=correlation_id", "=type"]
    fields = (
        "position",
        "type",
        "schema_version",
        "stream_id",
        "stream_version",
        "correlation_id",
        "causation_id",
        "actor",
        "recorded_at",
        "payload",
    )
    readonly_fields = fields
    show_full_result_count = False  # counting a long log on every page view is slow

    @admin.display(description="data")
    def payload(self, obj: Event) -> str:
        return pretty_json(obj.data)

    # Other apps add to the event's page through eventstore/event_page.py: panels rendered into
    # this page's template (admin/eventstore/event/change_form.html) and pages under an event.

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        event = self.get_object(request, unquote(object_id))
        if event is not None:
            extra_context = {
                **(extra_context or {}),
                "event_page": event_page_parts(request=request, event=event),
            }
        return super().change_view(request, object_id, form_url, extra_context)

    def get_urls(self) -> list[URLPattern]:
        return [
            *(
                path(
                    f"<path:object_id>/{v.route}/",
                    self.admin_site.admin_view(self._event_view(v)),
                    name=f"eventstore_event_{v.name}",
                )
                for v in event_views.all()
            ),
            *super().get_urls(),
        ]

    def _event_view(self, registered: EventView) -> Callable[..., HttpResponse]:
        def view(request: HttpRequest, object_id: str) -> HttpResponse:
            event = self.get_object(request, unquote(object_id))
            if event is None:
                # Not in django-stubs: Django's own "no such object" redirect (a private ModelAdmin helper).
                return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)  # type: ignore[attr-defined, no-any-return]
            return registered.view(request, event, self)

        return view


@admin.register(ProjectionCheckpoint)
class ProjectionCheckpointAdmin(ReadOnlyAdmin):
    list_display = ["name", "position", "updated_at", "error_position", "error_type", "error_message"]
    readonly_fields = [f.name for f in ProjectionCheckpoint._meta.fields]


@admin.register(ParkedEvent)
class ParkedEventAdmin(ReadOnlyAdmin):
    """Read only: a parked case is resolved by a retry or a skip (the dashboard, or
    `parked_case_retry` / `parked_case_skip`), never by editing its rows."""

    list_display = ["projection", "position", "type", "correlation_id", "error", "attempts", "parked_at"]
    list_filter = ["projection", "type"]
    search_fields = ["=correlation_id"]
    readonly_fields = [f.name for f in ParkedEvent._meta.fields]

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.db.models import Case, IntegerField, Model, Q, QuerySet, Value, When
from django.db.models.functions import Coalesce, Now
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, URLPattern, path, reverse
from django.utils import timezone
from django.utils.functional import lazy

from eventstore.admin import ReadOnlyAdmin, pretty_json
from todolists.lists import registry
from todolists.models import TodoItem
from todolists.operator import todo_item_park, todo_item_retry
from todolists.rollup import last_hour_since
from todolists.templatetags.todo_debug import absolute, when
from todolists.ui.charts import todo_list_charts, window_of
from todolists.ui.item_actions import item_actions
from todolists.ui.timeline import item_timeline
from todolists.ui.why import todo_item_why

if TYPE_CHECKING:
    from django.contrib.admin.filters import _ListFilterChoices  # the stubs' name for a choice

    _ModelAdmin = admin.ModelAdmin[Any]
else:
    _ModelAdmin = object  # a mixin: the admin it is mixed into is the ModelAdmin


def link(url: str, text: object) -> str:
    """A link in a changelist cell or read-only field, rendered by a template."""
    return render_to_string("admin/todolists/link.html", {"url": url, "text": text})


def story_url(correlation_id: str, list_name: str = "") -> str:
    """The page that tells a business case's whole story, as the lists declare it (the order's);
    else the event log filtered by the business case."""
    try:
        return reverse(registry.story_url_name(list_name), args=[correlation_id])
    except NoReverseMatch:
        return log_search_url(correlation_id)


def log_search_url(correlation_id: str) -> str:
    """Every event of a business case, in the event log."""
    return f"{reverse('admin:eventstore_event_changelist')}?q={correlation_id}"


def seconds(value: datetime.datetime | None) -> str:
    """A time in a changelist cell or read-only field: the debug pages' one format (see `when`)."""
    return when(value)


def item_now(item: TodoItem) -> str:
    """What an item is now, in words, for the message after an operator's action."""
    if item.status == TodoItem.Status.DONE:
        return f"done ({item.closed_by})"
    if item.status == TodoItem.Status.PARKED:
        return "parked: no further attempts until someone retries it"
    if item.next_attempt_at and item.next_attempt_at > timezone.now():
        return f"open, next attempt at {absolute(item.next_attempt_at)}"
    return "open and due now: the next worker takes it"


class ListFilter(admin.SimpleListFilter):
    title = "list"
    parameter_name = "list_name"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]) -> list[tuple[str, str]]:
        return [(t.name, t.title) for t in registry.all()]  # every list, also an empty one

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.filter(list_name=self.value()) if self.value() else queryset


class StateFilter(admin.SimpleListFilter):
    """Open items (parked ones included) unless asked: done ones would drown the stuck ones."""

    title = "state"
    parameter_name = "state"
    STATES = {
        "due": TodoItem.due(),
        "retrying": Q(status=TodoItem.Status.OPEN) & ~TodoItem.due(),
        "parked": Q(status=TodoItem.Status.PARKED),
        "done": Q(status=TodoItem.Status.DONE),
        "all": Q(),
    }

    def __init__(
        self,
        request: HttpRequest,
        params: dict[str, list[str]],
        model: type[Model],
        model_admin: admin.ModelAdmin[Any],
    ) -> None:
        super().__init__(request, params, model, model_admin)
        self.searching = bool(request.GET.get("q"))  # a search for a key finds it in any state

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]) -> list[tuple[str, str]]:
        return [
            ("due", "due now"),
            ("retrying", "retrying"),
            ("parked", "parked"),
            ("done_last_hour", "done in the last hour"),
            ("done", "done"),
            ("all", "all"),
        ]

    def choices(self, changelist: ChangeList) -> Iterator[_ListFilterChoices]:
        yield {
            "selected": self.value() is None,
            "query_string": changelist.get_query_string(remove=[self.parameter_name]),
            "display": "any (searching)" if self.searching else "open (default)",
        }
        for value, title in self.lookup_choices:
            yield {
                "selected": self.value() == value,
                "query_string": changelist.get_query_string({self.parameter_name: value}),
                "display": title,
            }

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "done_last_hour":
            # The dashboard's count of the same, from the rollup's minutes: the same start.
            since = last_hour_since(timezone.now())
            return queryset.filter(status=TodoItem.Status.DONE, closed_at__gte=since)
        default = Q() if self.searching else ~Q(status=TodoItem.Status.DONE)
        return queryset.filter(self.STATES.get(self.value() or "", default))


class LeaseFilter(admin.SimpleListFilter):
    title = "lease"
    parameter_name = "lease"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]) -> list[tuple[str, str]]:
        return [("held", "held now"), ("expired", "ran out, still claimed")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "held":
            return queryset.filter(claimed_until__gte=Now())
        if self.value() == "expired":
            return queryset.filter(TodoItem.lease_expired())
        return queryset


@admin.register(TodoItem)
class TodoItemAdmin(ReadOnlyAdmin):
    list_display = [
        "opened",
        "list_name",
        "key_link",
        "status",
        "attempts",
        "error_short",
        "next_attempt",
        "parked_since",
        "lease",
        "closes_on",
    ]
    list_display_links = ["opened"]
    list_filter = [ListFilter, StateFilter, LeaseFilter]
    list_per_page = 50
    show_full_result_count = False
    search_fields = ["^key", "^correlation_id"]  # a prefix, as the list shows keys cut short
    # The item page: times to the second, and no "next attempt" for a parked item.
    readonly_fields = (
        "list_name",
        "key",
        "status",
        "opened",
        "opened_by",
        "opened_position",
        "closed",
        "closed_by",
        "attempts",
        "last_error",
        "next_attempt",
        "parked_since",
        "parked_reason",
        "lease",
        "opening_event",
    )
    fields = readonly_fields
    actions = ["retry_now", "park"]

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        name = request.GET.get("list_name")
        # The charts' window is this page's parameter, not a filter of the items.
        query = request.GET.copy()
        window = window_of(query.pop("window", [""])[-1])
        request.GET = query  # type: ignore[assignment]  # django-stubs types GET as immutable
        if name in registry.names():
            todo = registry.get(name)
            title = f"{todo.title}: {request.GET.get('state') or 'open'} items"
            extra_context = {
                "title": title,
                "closes_on": todo.closed_by,
                "charts": todo_list_charts(list_name=name, window=window),
                "window": window,
                "chart_window_query": f"?{request.GET.urlencode()}&" if request.GET else "?",
                **(extra_context or {}),
            }
        return super().changelist_view(request, extra_context)

    def get_list_display(self, request: HttpRequest) -> list[Any] | tuple[Any, ...]:
        # Filtered to one list, its name and closing events are the same in every row: said once
        # above the table (the width is needed at 1280 px).
        if request.GET.get("list_name") in registry.names():
            return [c for c in self.list_display if c not in ("list_name", "closes_on")]
        return self.list_display

    def get_ordering(self, request: HttpRequest) -> list[Any]:
        # Open and parked first, then the longest-due first; done ones last.
        done_last = Case(
            When(status=TodoItem.Status.DONE, then=Value(1)), default=Value(0), output_field=IntegerField()
        )
        return [done_last.asc(), Coalesce("next_attempt_at", "opened_at").asc(), "opened_position"]

    @admin.display(description="opened", ordering="opened_position")
    def opened(self, obj: TodoItem) -> str:
        return seconds(obj.opened_at)

    @admin.display(description="closed")
    def closed(self, obj: TodoItem) -> str:
        return seconds(obj.closed_at)

    # Lazy: this module is imported before the apps have registered their lists.
    @admin.display(
        description=lazy(lambda: f"key ({', '.join(registry.key_fields())})", str)(), ordering="key"
    )
    def key_link(self, obj: TodoItem) -> str:
        # UUIDs are unique in their first 8 characters in practice; the full key is in the link
        # target and the item page, and the search box takes a prefix.
        short = obj.key if len(obj.key) <= 13 else f"{obj.key[:8]}…"
        return link(story_url(obj.correlation_id or obj.key, obj.list_name), short)

    @admin.display(description="last error")
    def error_short(self, obj: TodoItem) -> str:
        return obj.last_error[:120]

    @admin.display(description="next attempt", ordering="next_attempt_at")
    def next_attempt(self, obj: TodoItem) -> str:
        # A parked item is not tried again until someone retries it, whatever the row says.
        return seconds(obj.next_attempt_at) if obj.status == TodoItem.Status.OPEN else ""

    @admin.display(description="parked since", ordering="parked_at")
    def parked_since(self, obj: TodoItem) -> str:
        if obj.status != TodoItem.Status.PARKED or not obj.parked_at:
            return ""
        return seconds(obj.parked_at)  # with its age

    @admin.display(description="lease")
    def lease(self, obj: TodoItem) -> str:
        if not obj.claimed_by or obj.status != TodoItem.Status.OPEN:  # a closed item keeps its last claim
            return ""
        ran_out = "ran out" if obj.claimed_until and obj.claimed_until < timezone.now() else "until"
        return render_to_string(
            "admin/todolists/lease.html", {"by": obj.claimed_by, "state": ran_out, "until": obj.claimed_until}
        )

    @admin.display(description="closes on")
    def closes_on(self, obj: TodoItem) -> str:
        todo = registry.get(obj.list_name) if obj.list_name in registry.names() else None
        return ", ".join(todo.closed_by) if todo else "(list not registered)"

    @admin.display(description="opening event data")
    def opening_event(self, obj: TodoItem) -> str:
        return pretty_json(obj.payload)

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        item = self.get_object(request, object_id)
        if item is not None and item.list_name in registry.names():
            why = todo_item_why(item=item)
            extra_context = {
                **(extra_context or {}),
                "why": why,
                "timeline": item_timeline(item=item, why=why),
                "story_url": story_url(item.correlation_id or item.key, item.list_name),
                "item_now": item_now(item),
                "buttons": self.buttons(request, item),
            }
        return super().change_view(request, object_id, form_url, extra_context)

    def history_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        # Django's history lists admin edits, and items are never edited: their history is the log.
        item = self.get_object(request, object_id)
        if item is None:
            return super().history_view(request, object_id, extra_context)
        return HttpResponseRedirect(story_url(item.correlation_id or item.key))

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "<path:object_id>/act/<str:action>/",
                self.admin_site.admin_view(self.item_action_view),
                name="todolists_todoitem_act",
            ),
            *super().get_urls(),
        ]

    def buttons(self, request: HttpRequest, item: TodoItem) -> list[dict[str, Any]]:
        """The item page's buttons: each action that applies to this list, enabled or saying why not."""
        return [
            {
                "action": a,
                "url": reverse("admin:todolists_todoitem_act", args=[item.pk, a.name]),
                "refused": ""
                if request.user.has_perm(a.permission)
                else f"needs the permission {a.permission}",
            }
            for a in item_actions.all()
            if a.applies_to(item)
        ]

    def item_action_view(self, request: HttpRequest, object_id: str, action: str) -> HttpResponse:
        """Confirm, with a reason, then record: GET shows the form, POST runs the owning app's command.
        A refusal shows on the form with its reason; nothing is recorded then."""
        item = self.get_object(request, object_id)
        if item is None or item.list_name not in registry.names() or action not in item_actions.names():
            # Not in django-stubs: Django's own "no such object" redirect (a private ModelAdmin helper).
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)  # type: ignore[attr-defined, no-any-return]
        act = item_actions.get(action)
        if not act.applies_to(item):
            # Not in django-stubs: Django's own "no such object" redirect (a private ModelAdmin helper).
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)  # type: ignore[attr-defined, no-any-return]
        if not request.user.has_perm(act.permission):
            raise PermissionDenied(f"{act.label} needs the permission {act.permission}")
        form = ReasonForm(request.POST or None)
        refusal = ""
        if request.method == "POST" and form.is_valid():
            actor = request.user.get_username()
            try:
                act.run(item=item, actor=actor, reason=form.cleaned_data["reason"])
            except act.refused as exc:
                refusal = str(exc)
            else:
                touched = [
                    registry.get(item.list_name).projection_name,
                    *registry.affected_by(set(act.records)),
                ]
                self.catch_up_and_warn(request, [*touched, *act.projections])
                item = TodoItem.objects.get(pk=item.pk)
                self.message_user(
                    request,
                    f"{act.label}: recorded. Item {item.key} on {item.list_name} is now {item_now(item)}.",
                )
                return HttpResponseRedirect(reverse("admin:todolists_todoitem_change", args=[item.pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": f"{act.label}: {item.list_name} item {item.key}",
            "opts": self.opts,
            "item": item,
            "act": act,
            "form": form,
            "refusal": refusal,
            "item_now": item_now(item),
            "item_url": reverse("admin:todolists_todoitem_change", args=[item.pk]),
        }
        return TemplateResponse(request, "admin/todolists/todoitem/confirm_action.html", context)

    def has_operate_permission(self, request: HttpRequest) -> bool:
        allowed: bool = request.user.has_perm("todolists.operate_todoitem")
        return allowed

    @admin.action(description="Retry now (records TodoRetryRequested)", permissions=["operate"])
    def retry_now(self, request: HttpRequest, queryset: QuerySet[TodoItem]) -> None:
        actor = request.user.get_username()
        self.act_and_report(request, queryset, lambda item: todo_item_retry(item=item, actor=actor))

    @admin.action(description="Park (records TodoItemParked)", permissions=["operate"])
    def park(self, request: HttpRequest, queryset: QuerySet[TodoItem]) -> None:
        actor = request.user.get_username()

        self.act_and_report(
            request,
            queryset,
            lambda item: todo_item_park(item=item, reason=f"parked by {actor}", actor=actor),
        )

    def act_and_report(
        self, request: HttpRequest, queryset: QuerySet[TodoItem], command: Callable[[TodoItem], object]
    ) -> None:
        recorded = self.record_for_each(request, queryset, command)
        if not recorded:
            return
        self.catch_up_and_warn(request, (registry.get(i.list_name).projection_name for i in recorded))
        now = TodoItem.objects.filter(pk__in=[i.pk for i in recorded]).order_by("list_name", "key")
        for item in now[:10]:
            self.message_user(request, f"Item {item.key} on {item.list_name} is now {item_now(item)}.")
        if len(recorded) > 10:
            self.message_user(request, f"... and {len(recorded) - 10} more.")


class ReasonForm(forms.Form):
    reason = forms.CharField(
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Kept in the log beside the event, with your name.",
        error_messages={"required": "Say why: the reason stays in the log."},
    )


class SuperuserWritesOnly(_ModelAdmin):
    """django-q2's schedules and queue run whatever function they name: only superusers may edit them."""

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return request.user.is_superuser and super().has_add_permission(request, *args)

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return request.user.is_superuser and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return request.user.is_superuser and super().has_delete_permission(request, obj)


def _guard_django_q_admin() -> None:
    from django_q import admin as q_admin
    from django_q.models import OrmQ, Schedule

    for model, base in ((Schedule, q_admin.ScheduleAdmin), (OrmQ, q_admin.QueueAdmin)):
        if admin.site.is_registered(model):
            admin.site.unregister(model)
        admin.site.register(model, type(f"Guarded{base.__name__}", (SuperuserWritesOnly, base), {}))


_guard_django_q_admin()

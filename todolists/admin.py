import datetime

from django.conf import settings
from django.contrib import admin
from django.db.models import Case, IntegerField, Q, Value, When
from django.db.models.functions import Coalesce, Now
from django.template.loader import render_to_string
from django.urls import NoReverseMatch, reverse
from django.utils import dateformat, timezone

from eventstore.admin import EventAdmin, ReadOnlyAdmin, pretty_json
from eventstore.models import Event
from todolists.lists import registry
from todolists.models import TodoItem
from todolists.operator import todo_item_park, todo_item_retry
from todolists.templatetags.todo_debug import duration
from todolists.timeline import item_timeline
from todolists.why import todo_item_why


def link(url: str, text: object) -> str:
    """A link in a changelist cell or read-only field, rendered by a template."""
    return render_to_string("admin/todolists/link.html", {"url": url, "text": text})


def story_url(correlation_id: str) -> str:
    """The page that tells a business case's whole story (the order's, as configured)."""
    try:
        return reverse(settings.TODO_STORY_URL_NAME, args=[correlation_id])
    except NoReverseMatch:
        return f"{reverse('admin:eventstore_event_changelist')}?q={correlation_id}"


def seconds(value) -> str:
    return dateformat.format(timezone.localtime(value), "Y-m-d H:i:s") if value else ""


def item_now(item: TodoItem) -> str:
    """What an item is now, in words, for the message after an operator's action."""
    if item.status == TodoItem.Status.DONE:
        return f"done ({item.closed_by})"
    if item.status == TodoItem.Status.PARKED:
        return "parked: no further attempts until someone retries it"
    if item.next_attempt_at and item.next_attempt_at > timezone.now():
        return f"open, next attempt at {seconds(item.next_attempt_at)}"
    return "open and due now: the next worker takes it"


class ListFilter(admin.SimpleListFilter):
    title = "list"
    parameter_name = "list_name"

    def lookups(self, request, model_admin):
        return [(t.name, t.title) for t in registry.all()]  # every list, also an empty one

    def queryset(self, request, queryset):
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

    def __init__(self, request, params, model, model_admin):
        super().__init__(request, params, model, model_admin)
        self.searching = bool(request.GET.get("q"))  # a search for a key finds it in any state

    def lookups(self, request, model_admin):
        return [
            ("due", "due now"),
            ("retrying", "retrying"),
            ("parked", "parked"),
            ("done_last_hour", "done in the last hour"),
            ("done", "done"),
            ("all", "all"),
        ]

    def choices(self, changelist):
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

    def queryset(self, request, queryset):
        if self.value() == "done_last_hour":
            since = timezone.now() - datetime.timedelta(hours=1)
            return queryset.filter(status=TodoItem.Status.DONE, closed_at__gte=since)
        default = Q() if self.searching else ~Q(status=TodoItem.Status.DONE)
        return queryset.filter(self.STATES.get(self.value(), default))


class LeaseFilter(admin.SimpleListFilter):
    title = "lease"
    parameter_name = "lease"

    def lookups(self, request, model_admin):
        return [("held", "held now"), ("expired", "ran out, still claimed")]

    def queryset(self, request, queryset):
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
        "age",
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
    fields = [
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
    ]
    readonly_fields = fields
    actions = ["retry_now", "park"]

    def changelist_view(self, request, extra_context=None):
        name = request.GET.get("list_name")
        if name in registry.names():
            title = f"{registry.get(name).title}: {request.GET.get('state') or 'open'} items"
            extra_context = {"title": title, **(extra_context or {})}
        return super().changelist_view(request, extra_context)

    def get_list_display(self, request):
        # Filtered to one list, its name in every row is noise (and width at 1280 px).
        if request.GET.get("list_name"):
            return [c for c in self.list_display if c != "list_name"]
        return self.list_display

    def get_ordering(self, request):
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

    @admin.display(description="key (order)", ordering="key")
    def key_link(self, obj: TodoItem) -> str:
        # UUIDs are unique in their first 8 characters in practice; the full key is in the link
        # target and the item page, and the search box takes a prefix.
        short = obj.key if len(obj.key) <= 13 else f"{obj.key[:8]}…"
        return link(story_url(obj.correlation_id or obj.key), short)

    @admin.display(description="age", ordering="opened_at")
    def age(self, obj: TodoItem) -> str:
        return duration((obj.closed_at or timezone.now()) - obj.opened_at)

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
        return f"{seconds(obj.parked_at)} ({duration(timezone.now() - obj.parked_at)})"

    @admin.display(description="lease")
    def lease(self, obj: TodoItem) -> str:
        if not obj.claimed_by:
            return ""
        ran_out = " (ran out)" if obj.claimed_until and obj.claimed_until < timezone.now() else ""
        until = (
            dateformat.format(timezone.localtime(obj.claimed_until), "H:i:s") if obj.claimed_until else "?"
        )
        return f"{obj.claimed_by} until {until}{ran_out}"

    @admin.display(description="closes on")
    def closes_on(self, obj: TodoItem) -> str:
        todo = registry.get(obj.list_name) if obj.list_name in registry.names() else None
        return ", ".join(todo.closed_by) if todo else "(list not registered)"

    @admin.display(description="opening event data")
    def opening_event(self, obj: TodoItem) -> str:
        return pretty_json(obj.payload)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        item = self.get_object(request, object_id)
        if item is not None and item.list_name in registry.names():
            why = todo_item_why(item=item)
            extra_context = {
                **(extra_context or {}),
                "why": why,
                "timeline": item_timeline(item=item, why=why),
                "story_url": story_url(item.correlation_id or item.key),
                "item_now": item_now(item),
            }
        return super().change_view(request, object_id, form_url, extra_context)

    def has_operate_permission(self, request) -> bool:
        return request.user.has_perm("todolists.operate_todoitem")

    @admin.action(description="Retry now (records TodoRetryRequested)", permissions=["operate"])
    def retry_now(self, request, queryset):
        actor = request.user.get_username()
        self.act_and_report(request, queryset, lambda item: todo_item_retry(item=item, actor=actor))

    @admin.action(description="Park (records TodoItemParked)", permissions=["operate"])
    def park(self, request, queryset):
        actor = request.user.get_username()

        def park(item: TodoItem) -> None:
            if item.status != TodoItem.Status.OPEN:
                raise ValueError(
                    f"{item.list_name} item {item.key} is {item.status}; only an open item can be parked."
                )
            todo_item_park(item=item, reason=f"parked by {actor}", actor=actor)

        self.act_and_report(request, queryset, park)

    def act_and_report(self, request, queryset, command) -> None:
        recorded = self.record_for_each(request, queryset, command)
        if not recorded:
            return
        self.catch_up_and_warn(request, (registry.get(i.list_name).projection_name for i in recorded))
        now = TodoItem.objects.filter(pk__in=[i.pk for i in recorded]).order_by("list_name", "key")
        for item in now[:10]:
            self.message_user(request, f"Item {item.key} on {item.list_name} is now {item_now(item)}.")
        if len(recorded) > 10:
            self.message_user(request, f"... and {len(recorded) - 10} more.")


admin.site.unregister(Event)


@admin.register(Event)
class EventWithItemsAdmin(EventAdmin):
    """The event page with links to its business case's story and the items it opened or closed
    (registered here because the event store knows nothing of lists or orders)."""

    def change_view(self, request, object_id, form_url="", extra_context=None):
        event = self.get_object(request, object_id)
        if event is not None:
            items = TodoItem.objects.filter(Q(opened_position=event.pk) | Q(closed_position=event.pk))
            extra_context = {
                **(extra_context or {}),
                "story_url": story_url(event.correlation_id) if event.correlation_id else "",
                "opened_items": [i for i in items if i.opened_position == event.pk],
                "closed_items": [i for i in items if i.closed_position == event.pk],
            }
        return super().change_view(request, object_id, form_url, extra_context)


class SuperuserWritesOnly:
    """django-q2's schedules and queue run whatever function they name: only superusers may edit them."""

    def has_add_permission(self, request, *args):
        return request.user.is_superuser and super().has_add_permission(request, *args)

    def has_change_permission(self, request, obj=None):
        return request.user.is_superuser and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser and super().has_delete_permission(request, obj)


def _guard_django_q_admin() -> None:
    from django_q import admin as q_admin
    from django_q.models import OrmQ, Schedule

    for model, base in ((Schedule, q_admin.ScheduleAdmin), (OrmQ, q_admin.QueueAdmin)):
        if admin.site.is_registered(model):
            admin.site.unregister(model)
        admin.site.register(model, type(f"Guarded{base.__name__}", (SuperuserWritesOnly, base), {}))


_guard_django_q_admin()

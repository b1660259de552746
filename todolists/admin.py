from django.contrib import admin
from django.utils import timezone
from django.utils.timesince import timesince

from eventstore.admin import ReadOnlyAdmin, pretty_json
from todolists.models import TodoItem
from todolists.operator import todo_item_park, todo_item_retry


@admin.register(TodoItem)
class TodoItemAdmin(ReadOnlyAdmin):
    list_display = [
        "list_name",
        "key",
        "status",
        "opened_at",
        "age",
        "attempts",
        "short_error",
        "next_attempt_at",
        "claimed_by",
    ]
    list_filter = ["list_name", "status"]
    search_fields = ["=key", "=correlation_id"]
    readonly_fields = [f.name for f in TodoItem._meta.fields if f.name != "payload"] + ["opening_event"]
    exclude = ["payload"]
    actions = ["retry_now", "park"]

    @admin.display(description="age", ordering="opened_at")
    def age(self, obj: TodoItem) -> str:
        return timesince(obj.opened_at, obj.closed_at or timezone.now())

    @admin.display(description="last error")
    def short_error(self, obj: TodoItem) -> str:
        return obj.last_error[:80]

    @admin.display(description="opening event data")
    def opening_event(self, obj: TodoItem) -> str:
        return pretty_json(obj.payload)

    def has_operate_permission(self, request) -> bool:
        return request.user.has_perm("todolists.operate_todoitem")

    @admin.action(description="Retry now (records TodoRetryRequested)", permissions=["operate"])
    def retry_now(self, request, queryset):
        actor = request.user.get_username()
        self.record_for_each(request, queryset, lambda item: todo_item_retry(item=item, actor=actor))

    @admin.action(description="Park (records TodoItemParked)", permissions=["operate"])
    def park(self, request, queryset):
        actor = request.user.get_username()
        self.record_for_each(
            request,
            queryset.filter(status=TodoItem.Status.OPEN),
            lambda item: todo_item_park(item=item, reason="parked by an operator", actor=actor),
        )


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

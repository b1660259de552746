from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from eventstore.admin import ReadOnlyAdmin
from eventstore.store import ConcurrencyError, correlation_read
from orders.commands import OrderRejected, order_cancel
from orders.models import Order
from todolists.models import TodoItem


@admin.register(Order)
class OrderAdmin(ReadOnlyAdmin):
    list_display = [
        "order_id",
        "customer",
        "amount",
        "currency",
        "status",
        "placed_at",
        "confirmed_at",
        "cancelled_at",
    ]
    list_filter = ["status", "currency"]
    search_fields = ["=order_id", "customer"]
    date_hierarchy = "placed_at"
    readonly_fields = [f.name for f in Order._meta.fields] + ["story", "todo_items"]
    actions = ["cancel"]

    @admin.display(description="story (every event of this order, across apps)")
    def story(self, obj: Order) -> str:
        rows = (
            (
                reverse("admin:eventstore_event_change", args=[e.position]),
                e.position,
                e.recorded_at.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3],
                e.type,
                e.stream_id,
                e.actor,
                ", ".join(f"{k}={v}" for k, v in e.data.items() if k != "order_id"),
            )
            for e in correlation_read(correlation_id=obj.order_id)
        )
        return format_html(
            "<table><tr><th>#</th><th>recorded</th><th>event</th><th>stream</th><th>actor</th><th>data</th></tr>"
            "{}</table>",
            format_html_join(
                "",
                '<tr><td><a href="{}">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>',
                rows,
            ),
        )

    @admin.display(description="TODO items")
    def todo_items(self, obj: Order) -> str:
        items = TodoItem.objects.filter(correlation_id=obj.order_id).order_by("opened_position")
        return format_html(
            "<table><tr><th>list</th><th>status</th><th>opened by</th><th>closed by</th><th>attempts</th>"
            "<th>last error</th></tr>{}</table>",
            format_html_join(
                "",
                '<tr><td><a href="{}">{}</a></td><td>{}</td><td>{} #{}</td><td>{}</td><td>{}</td><td>{}</td></tr>',
                (
                    (
                        reverse("admin:todolists_todoitem_change", args=[i.pk]),
                        i.list_name,
                        i.status,
                        i.opened_by,
                        i.opened_position,
                        i.closed_by or "-",
                        i.attempts,
                        i.last_error or "-",
                    )
                    for i in items
                ),
            ),
        )

    def has_cancel_permission(self, request) -> bool:
        return request.user.has_perm("orders.cancel_order")

    @admin.action(description="Cancel order (records OrderCancelled)", permissions=["cancel"])
    def cancel(self, request, queryset):
        self.record_for_each(
            request,
            queryset,
            lambda order: order_cancel(
                order_id=order.order_id, reason="cancelled by an operator", actor=request.user.get_username()
            ),
            refused=(OrderRejected, ConcurrencyError),
        )

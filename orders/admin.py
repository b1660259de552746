from django.contrib import admin

from eventstore.admin import ReadOnlyAdmin
from eventstore.parked_cases import parked_cases_list
from eventstore.store import ConcurrencyError, correlation_read
from orders.commands import OrderRejected, order_cancel
from orders.events import OrderCancelled
from orders.models import Order
from todolists.lists import registry as todo_lists
from todolists.models import TodoItem
from todolists.ui.item_actions import ItemAction, item_actions


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
    readonly_fields = [f.name for f in Order._meta.fields]
    actions = ["cancel"]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        # The story and the items render in admin/orders/order/change_form.html.
        extra_context = {
            **(extra_context or {}),
            "story": correlation_read(correlation_id=object_id),
            "parked_case": parked_cases_list(correlation_id=object_id),
            "todo_items": TodoItem.objects.filter(correlation_id=object_id).order_by("opened_position"),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def has_cancel_permission(self, request) -> bool:
        return request.user.has_perm("orders.cancel_order")

    @admin.action(description=f"Cancel order (records {OrderCancelled.event_type})", permissions=["cancel"])
    def cancel(self, request, queryset):
        actor = request.user.get_username()
        recorded = self.record_for_each(
            request,
            queryset,
            lambda order: order_cancel(order_id=order.order_id, reason=f"cancelled by {actor}", actor=actor),
            refused=(OrderRejected, ConcurrencyError),
        )
        if not recorded:
            return
        # Show the effect on this page: the orders and every list the cancellation touches.
        self.catch_up_and_warn(request, ["orders", *todo_lists.affected_by({OrderCancelled})])
        for order in Order.objects.filter(pk__in=[o.pk for o in recorded])[:10]:
            self.message_user(request, f"Order {order.order_id} is now {order.status}.")


def _cancel_from_item(*, item: TodoItem, actor: str, reason: str) -> None:
    order_cancel(order_id=item.correlation_id or item.key, reason=reason, actor=actor)


# The item page's "Cancel order" button (todolists/ui/item_actions.py).
item_actions.register(
    ItemAction(
        name="cancel_order",
        label="Cancel order",
        records=(OrderCancelled.event_type,),
        permission="orders.cancel_order",
        run=_cancel_from_item,
        explain="The order is cancelled, and every open item of it closes. Refused once its payment may be under way.",
        refused=(OrderRejected, ConcurrencyError),
        projections=("orders",),
    )
)

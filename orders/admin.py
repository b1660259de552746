from django.contrib import admin

from eventstore.admin import ReadOnlyAdmin
from orders.models import Order


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

from django.contrib import admin

from eventstore.admin import ReadOnlyAdmin
from payments.models import InProcessCharge, Payment


@admin.register(Payment)
class PaymentAdmin(ReadOnlyAdmin):
    list_display = [
        "order_id",
        "amount",
        "currency",
        "status",
        "attempts",
        "payment_id",
        "decline_code",
        "last_error",
    ]
    list_filter = ["status", "currency"]
    search_fields = ["=order_id", "=payment_id"]


@admin.register(InProcessCharge)
class InProcessChargeAdmin(ReadOnlyAdmin):
    list_display = [
        "payment_id",
        "order_id",
        "amount_minor",
        "currency",
        "succeeded",
        "decline_code",
        "created_at",
    ]
    list_filter = ["succeeded"]
    search_fields = ["=order_id", "=payment_id", "=idempotency_key"]

from django.contrib import admin

from eventstore.admin import ReadOnlyAdmin
from payments.commands import Outcome, payment_give_up
from payments.errors import PaymentRefused
from payments.events import PaymentFailed, PaymentIssued
from payments.gateway import GatewayUnavailable
from payments.models import InProcessCharge, Payment
from todolists.lists import registry as todo_lists


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
    actions = ["give_up"]

    def has_give_up_permission(self, request) -> bool:
        return request.user.has_perm("payments.give_up_payment")

    @admin.action(
        description=(
            "Give up on a parked payment (records the charge if the gateway took one, "
            f"else {PaymentFailed.event_type})"
        ),
        permissions=["give_up"],
    )
    def give_up(self, request, queryset):
        actor = request.user.get_username()
        outcomes: dict[str, Outcome] = {}

        def give_up(payment: Payment) -> None:
            outcomes[payment.order_id] = payment_give_up(order_id=payment.order_id, actor=actor)

        self.record_for_each(request, queryset, give_up, refused=(PaymentRefused, GatewayUnavailable))
        if not outcomes:
            return
        self.catch_up_and_warn(request, ["payments", *todo_lists.affected_by({PaymentIssued, PaymentFailed})])
        for order_id, outcome in list(outcomes.items())[:10]:
            if outcome == Outcome.ISSUED:
                text = (
                    "the gateway had taken a charge under its key: recorded "
                    f"{PaymentIssued.event_type}, the order will be confirmed"
                )
            else:
                text = (
                    f"no charge under its key: recorded {PaymentFailed.event_type} (given_up), "
                    "the order will be cancelled"
                )
            self.message_user(request, f"Payment of order {order_id}: {text}.")


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

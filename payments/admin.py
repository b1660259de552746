from django.contrib import admin
from django.db.models import Exists, OuterRef

from eventstore.admin import ReadOnlyAdmin
from payments.commands import PAYMENTS_LIST, Outcome, payment_give_up
from payments.errors import GiveUpRefused, PaymentRefused
from payments.events import PaymentFailed, PaymentIssued
from payments.gateway import GatewayUnavailable
from payments.models import InProcessCharge, Payment
from todolists.lists import registry as todo_lists
from todolists.models import TodoItem
from todolists.ui.item_actions import ItemAction, item_actions


class PaymentStateFilter(admin.SimpleListFilter):
    """The payment's status, with "parked" told apart from "pending": a parked payment waits for
    an operator, not for the gateway."""

    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [
            ("pending", "pending (being worked)"),
            ("parked", "parked"),
            ("issued", "issued"),
            ("failed", "failed"),
        ]

    def queryset(self, request, queryset):
        if self.value() == "parked":
            return queryset.filter(parked=True)
        if self.value() == "pending":
            return queryset.filter(status=Payment.Status.PENDING, parked=False)
        if self.value():
            return queryset.filter(status=self.value())
        return queryset


@admin.register(Payment)
class PaymentAdmin(ReadOnlyAdmin):
    list_display = [
        "order_id",
        "amount",
        "currency",
        "state",
        "attempts",
        "payment_id",
        "decline_code",
        "last_error",
    ]
    list_filter = [PaymentStateFilter, "currency"]
    search_fields = ["=order_id", "=payment_id"]
    actions = ["give_up"]

    def get_queryset(self, request):
        parked = TodoItem.objects.filter(
            list_name=PAYMENTS_LIST, key=OuterRef("order_id"), status=TodoItem.Status.PARKED
        )
        return super().get_queryset(request).annotate(parked=Exists(parked))

    @admin.display(description="state", ordering="status")
    def state(self, obj: Payment) -> str:
        return "parked" if getattr(obj, "parked", False) else obj.status

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


def _give_up_from_item(*, item: TodoItem, actor: str, reason: str) -> None:
    payment_give_up(order_id=item.key, actor=actor, reason=reason)


# The item page's "Give up" button on a parked payment (todolists/ui/item_actions.py).
item_actions.register(
    ItemAction(
        name="give_up",
        label="Give up",
        records=(PaymentIssued.event_type, PaymentFailed.event_type),
        permission="payments.give_up_payment",
        run=_give_up_from_item,
        explain=(
            "Asks the gateway for a charge under the order's key: if it took one, records PaymentIssued "
            "(the order is confirmed); if not, PaymentFailed (the order is cancelled)."
        ),
        lists=(PAYMENTS_LIST,),
        refused=(GiveUpRefused, GatewayUnavailable),
        projections=("payments",),
    )
)

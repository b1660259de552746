"""The TODO lists orders owns, and their automations.

Both lists are opened by payment outcomes, payments' published events. Each
automation re-reads its batch's orders in one query, decides order by order, and appends the
batch's decisions in one go.
"""

from collections.abc import Sequence
from typing import cast

from eventstore.events import event_decode
from eventstore.store import correlations_read
from orders.commands import Cancellation, OrderNotOpen, orders_cancel, orders_confirm
from orders.events import OrderCancelled, OrderConfirmed, PaymentFailed, PaymentIssued
from orders.models import Order
from todolists.lists import TodoList
from todolists.models import TodoItem

# The order's admin page tells its story: every event of the business case, across apps.
ORDER_STORY = "admin:orders_order_change"


def confirm_paid_orders(items: Sequence[TodoItem], *, deadline: float) -> dict[str, Exception | None]:
    cases = correlations_read(correlation_ids=[i.key for i in items])
    return _unless_done_already(orders_confirm(cases=cases, actor="automation"), Order.Status.CONFIRMED)


def cancel_unpaid_orders(items: Sequence[TodoItem], *, deadline: float) -> dict[str, Exception | None]:
    cases = correlations_read(correlation_ids=[i.key for i in items])
    cancels: dict[str, Cancellation] = {}
    errors: dict[str, Exception | None] = {}
    for item in items:
        try:
            cancels[item.key] = Cancellation(_failure_reason(item), str(item.opened_position))
        except Exception as exc:  # an unreadable payload: this item's failure only
            errors[item.key] = exc
    errors.update(orders_cancel(cancels=cancels, cases=cases, actor="automation"))
    return _unless_done_already(errors, Order.Status.CANCELLED)


def _failure_reason(item: TodoItem) -> str:
    # The item holds the opening PaymentFailed's data: read it as that event, typed.
    failed = cast(PaymentFailed, event_decode(PaymentFailed.event_type, item.payload))
    return f"payment failed: {failed.decline_code or 'declined'}"


def _unless_done_already(
    errors: dict[str, Exception | None], done: Order.Status
) -> dict[str, Exception | None]:
    """An order already in the state the list brings it to is done: the list closes when the
    projection catches up. Any other state is a failed attempt (e.g. paid but cancelled),
    parked in view for an operator."""
    return {
        key: None if isinstance(error, OrderNotOpen) and error.state == done else error
        for key, error in errors.items()
    }


orders_to_confirm = TodoList(
    name="orders_to_confirm",
    title="Orders to confirm",
    opened_by=(PaymentIssued,),
    closed_by=(OrderConfirmed, OrderCancelled),
    work=confirm_paid_orders,
    key_field="order_id",
    records=(OrderConfirmed,),
    story_url_name=ORDER_STORY,
)

orders_to_cancel = TodoList(
    name="orders_to_cancel",
    title="Orders to cancel",
    opened_by=(PaymentFailed,),
    closed_by=(OrderCancelled, OrderConfirmed),
    work=cancel_unpaid_orders,
    key_field="order_id",
    records=(OrderCancelled,),
    story_url_name=ORDER_STORY,
)

"""The TODO lists orders owns, and their automations.

Both lists are opened by payment outcomes, payments' published events. Each
automation re-reads its batch's orders in one query, then decides and appends order by order.
"""

from collections.abc import Sequence
from typing import cast

from eventstore.events import event_decode
from eventstore.store import RecordedEvent, correlations_read
from orders.commands import OrderNotOpen, order_cancel, order_confirm
from orders.events import OrderCancelled, OrderConfirmed, PaymentFailed, PaymentIssued
from orders.models import Order
from todolists.lists import TodoList
from todolists.models import TodoItem
from todolists.runner import todo_items_each

# The order's admin page tells its story: every event of the business case, across apps.
ORDER_STORY = "admin:orders_order_change"


def confirm_paid_order(item: TodoItem, case: Sequence[RecordedEvent] | None = None) -> None:
    try:
        order_confirm(order_id=item.key, actor="automation", case=case)
    except OrderNotOpen as exc:
        if exc.state != Order.Status.CONFIRMED:
            raise  # e.g. paid but cancelled: a failed attempt, parked in view for an operator
        # decided already; the list closes when the projection catches up


def cancel_unpaid_order(item: TodoItem, case: Sequence[RecordedEvent] | None = None) -> None:
    # The item holds the opening PaymentFailed's data: read it as that event, typed.
    failed = cast(PaymentFailed, event_decode(PaymentFailed.event_type, item.payload))
    reason = f"payment failed: {failed.decline_code or 'declined'}"
    try:
        order_cancel(
            order_id=item.key,
            reason=reason,
            actor="automation",
            causation_id=str(item.opened_position),
            case=case,
        )
    except OrderNotOpen as exc:
        if exc.state != Order.Status.CANCELLED:
            raise


def _batch(act):
    def work(items: Sequence[TodoItem], *, deadline: float) -> dict[str, Exception | None]:
        cases = correlations_read(correlation_ids=[i.key for i in items])
        return todo_items_each(items=items, act=lambda item: act(item, cases[item.key]), deadline=deadline)

    return work


orders_to_confirm = TodoList(
    name="orders_to_confirm",
    title="Orders to confirm",
    opened_by=(PaymentIssued,),
    closed_by=(OrderConfirmed, OrderCancelled),
    work=_batch(confirm_paid_order),
    key_field="order_id",
    records=(OrderConfirmed,),
    story_url_name=ORDER_STORY,
)

orders_to_cancel = TodoList(
    name="orders_to_cancel",
    title="Orders to cancel",
    opened_by=(PaymentFailed,),
    closed_by=(OrderCancelled, OrderConfirmed),
    work=_batch(cancel_unpaid_order),
    key_field="order_id",
    records=(OrderCancelled,),
    story_url_name=ORDER_STORY,
)

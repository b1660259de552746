"""The "payments to issue" list: opened by OrderPlaced, closed by the payment's outcome, or by the
order's cancellation (an operator cancelled it before it was paid)."""

from collections.abc import Sequence

from payments.commands import payment_issue, payments_read
from payments.gateway import get_gateway
from todolists.lists import TodoList
from todolists.models import TodoItem
from todolists.runner import todo_items_each


def issue_payments(items: Sequence[TodoItem], *, deadline: float) -> dict[str, Exception | None]:
    """Re-read the batch's orders in one query, then charge each (concurrently when the gateway
    is network-bound); each outcome is appended on its own."""
    cases = payments_read(order_ids=[i.key for i in items])
    gateway = get_gateway()
    return todo_items_each(
        items=items,
        act=lambda item: payment_issue(order_id=item.key, gateway=gateway, case=cases[item.key]),
        deadline=deadline,
        concurrency=gateway.max_concurrency,
    )


payments_to_issue = TodoList(
    name="payments_to_issue",
    title="Payments to issue",
    opened_by=("OrderPlaced",),
    closed_by=("PaymentIssued", "PaymentFailed", "OrderCancelled"),
    work=issue_payments,
    key_field="order_id",
    records=("PaymentStarted", "PaymentIssued", "PaymentFailed"),
)

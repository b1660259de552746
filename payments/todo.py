"""The "payments to issue" list: opened by OrderPlaced, closed by the payment's outcome, or by the
order's cancellation (an operator cancelled it before it was paid)."""

from collections.abc import Sequence

from eventstore.store import correlations_read
from payments.commands import PAYMENTS_LIST, payment_issue
from payments.events import OrderCancelled, OrderPlaced, PaymentFailed, PaymentIssued, PaymentStarted
from payments.gateway import payment_gateway
from todolists.lists import TodoList
from todolists.models import TodoItem
from todolists.runner import todo_items_each


def issue_payments(items: Sequence[TodoItem], *, deadline: float) -> dict[str, Exception | None]:
    """Re-read the batch's orders in one query, then charge each (concurrently when the gateway
    is network-bound); each outcome is appended on its own."""
    cases = correlations_read(correlation_ids=[i.key for i in items])
    gateway = payment_gateway()
    return todo_items_each(
        items=items,
        act=lambda item: payment_issue(order_id=item.key, gateway=gateway, case=cases[item.key]),
        deadline=deadline,
        concurrency=gateway.max_concurrency,
    )


payments_to_issue = TodoList(
    name=PAYMENTS_LIST,
    title="Payments to issue",
    opened_by=(OrderPlaced,),
    closed_by=(PaymentIssued, PaymentFailed, OrderCancelled),
    work=issue_payments,
    key_field="order_id",
    records=(PaymentStarted, PaymentIssued, PaymentFailed),
)

"""The "payments to issue" list: opened by OrderPlaced, closed by the payment's outcome, or by the
order's cancellation (an operator cancelled it before it was paid)."""

from collections.abc import Callable, Sequence

from eventstore.store import correlations_read
from payments.commands import PAYMENTS_LIST, payments_issue
from payments.events import OrderCancelled, OrderPlaced, PaymentFailed, PaymentIssued, PaymentStarted
from payments.gateway import payment_gateway
from todolists.lists import TodoList
from todolists.models import TodoItem
from todolists.runner import todo_items_each


def issue_payments(items: Sequence[TodoItem], *, deadline: float) -> dict[str, Exception | None]:
    """Re-read the batch's orders in one query, start their payments in one append, charge each
    (concurrently when the gateway is network-bound, until the deadline), and record the
    outcomes in one append."""
    cases = correlations_read(correlation_ids=[i.key for i in items])
    gateway = payment_gateway()
    by_key = {i.key: i for i in items}

    def charge_each(order_ids: Sequence[str], act: Callable[[str], object]) -> dict[str, Exception | None]:
        return todo_items_each(
            items=[by_key[o] for o in order_ids],
            act=lambda item: act(item.key),
            deadline=deadline,
            concurrency=gateway.max_concurrency,
        )

    results = payments_issue(cases=cases, gateway=gateway, charge_each=charge_each)
    return {key: r if isinstance(r, Exception) else None for key, r in results.items()}


payments_to_issue = TodoList(
    name=PAYMENTS_LIST,
    title="Payments to issue",
    opened_by=(OrderPlaced,),
    closed_by=(PaymentIssued, PaymentFailed, OrderCancelled),
    work=issue_payments,
    key_field="order_id",
    records=(PaymentStarted, PaymentIssued, PaymentFailed),
)

"""The "payments to issue" list: opened by OrderPlaced, closed by the payment's outcome, or by the
order's cancellation (an operator cancelled it before it was paid)."""

from payments.commands import payment_issue
from todolists.lists import TodoList
from todolists.models import TodoItem


def issue_payment(item: TodoItem) -> None:
    payment_issue(order_id=item.key)


payments_to_issue = TodoList(
    name="payments_to_issue",
    title="Payments to issue",
    opened_by=("OrderPlaced",),
    closed_by=("PaymentIssued", "PaymentFailed", "OrderCancelled"),
    work=issue_payment,
    key_field="order_id",
    records=("PaymentStarted", "PaymentIssued", "PaymentFailed"),
)

"""Payment events. A failed attempt (timeout, 5xx) is the runner's TodoAttemptFailed, not ours."""

import decimal

from eventstore.events import DomainEvent, event_type, published


@event_type("PaymentStarted")
class PaymentStarted(DomainEvent):
    """Recorded before the first charge attempt. From here on the order cannot be cancelled until
    the payment is decided, so a cancellation can never race a charge."""

    order_id: str
    idempotency_key: str


@event_type("PaymentIssued")
class PaymentIssued(DomainEvent):
    order_id: str
    payment_id: str
    amount: decimal.Decimal
    currency: str


@event_type("PaymentFailed")
class PaymentFailed(DomainEvent):
    """A business failure (the card was declined): the order will be cancelled."""

    order_id: str
    decline_code: str
    message: str


# What payments reads of orders (orders' published language), by name: payments never imports orders.
OrderPlaced = published("OrderPlaced")
OrderCancelled = published("OrderCancelled")

"""Order events: the facts orders records (the published language other apps read by name), and
the payments events orders reacts to, declared here by their published names: orders never
imports payments."""

import decimal

from eventstore.events import DomainEvent, event_type, published


@event_type("OrderPlaced")
class OrderPlaced(DomainEvent):
    order_id: str
    customer: str
    amount: decimal.Decimal
    currency: str
    payment_method: str


@event_type("OrderConfirmed")
class OrderConfirmed(DomainEvent):
    order_id: str
    payment_id: str


@event_type("OrderCancelled")
class OrderCancelled(DomainEvent):
    order_id: str
    reason: str


# What orders reads of payments (payments' published language).
PaymentStarted = published("PaymentStarted")
PaymentIssued = published("PaymentIssued")
PaymentFailed = published("PaymentFailed")

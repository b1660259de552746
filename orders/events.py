"""Order events: the facts orders records, and the published language other apps read (and import)."""

import decimal

from eventstore.events import DomainEvent, event_type


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

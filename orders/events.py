import dataclasses
import decimal

from eventstore.events import event_type


@event_type("OrderPlaced")
@dataclasses.dataclass(frozen=True, kw_only=True)
class OrderPlaced:
    order_id: str
    customer: str
    amount: decimal.Decimal
    currency: str
    payment_method: str


@event_type("OrderConfirmed")
@dataclasses.dataclass(frozen=True, kw_only=True)
class OrderConfirmed:
    order_id: str
    payment_id: str


@event_type("OrderCancelled")
@dataclasses.dataclass(frozen=True, kw_only=True)
class OrderCancelled:
    order_id: str
    reason: str

import dataclasses
import datetime
import decimal

from eventstore.events import event_type


@event_type("PaymentStarted")
@dataclasses.dataclass(frozen=True, kw_only=True)
class PaymentStarted:
    """Recorded before the first charge attempt. From here on the order cannot be cancelled until
    the payment is decided, so a cancellation can never race a charge."""

    order_id: str
    idempotency_key: str


@event_type("PaymentIssued")
@dataclasses.dataclass(frozen=True, kw_only=True)
class PaymentIssued:
    order_id: str
    payment_id: str
    amount: decimal.Decimal
    currency: str


@event_type("PaymentFailed")
@dataclasses.dataclass(frozen=True, kw_only=True)
class PaymentFailed:
    """A business failure (the card was declined): the order will be cancelled."""

    order_id: str
    decline_code: str
    message: str


@event_type("PaymentAttemptFailed")
@dataclasses.dataclass(frozen=True, kw_only=True)
class PaymentAttemptFailed:
    """A transient failure (timeout, 5xx): the charge is tried again at `retry_at`."""

    order_id: str
    attempt: int
    error: str
    retry_at: datetime.datetime

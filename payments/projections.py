"""The Payment read model, as plain handlers per event type."""

from eventstore.projections import Projection
from eventstore.store import RecordedEvent
from payments.models import Payment


def on_order_placed(event: RecordedEvent) -> None:
    data = event.data
    Payment.objects.create(
        order_id=data["order_id"],
        amount=data["amount"],
        currency=data["currency"],
        payment_method=data["payment_method"],
        requested_at=event.recorded_at,
    )


def on_issued(event: RecordedEvent) -> None:
    Payment.objects.filter(order_id=event.data["order_id"]).update(
        status=Payment.Status.ISSUED, payment_id=event.data["payment_id"], decided_at=event.recorded_at
    )


def on_failed(event: RecordedEvent) -> None:
    Payment.objects.filter(order_id=event.data["order_id"]).update(
        status=Payment.Status.FAILED,
        decline_code=event.data["decline_code"],
        last_error=event.data["message"],
        decided_at=event.recorded_at,
    )


def on_attempt_failed(event: RecordedEvent) -> None:
    Payment.objects.filter(order_id=event.data["order_id"]).update(
        attempts=event.data["attempt"], last_error=event.data["error"]
    )


payments = Projection(
    name="payments",
    title="Payments",
    handlers={
        "OrderPlaced": on_order_placed,
        "PaymentIssued": on_issued,
        "PaymentFailed": on_failed,
        "PaymentAttemptFailed": on_attempt_failed,
    },
    reset=lambda: Payment.objects.all().delete(),
)

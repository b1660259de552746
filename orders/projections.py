"""The Order read model, as plain handlers per event type."""

from eventstore.projections import Projection
from eventstore.store import RecordedEvent
from orders.models import Order


def on_placed(event: RecordedEvent) -> None:
    placed = event.event
    Order.objects.create(
        order_id=placed.order_id,
        customer=placed.customer,
        amount=placed.amount,
        currency=placed.currency,
        payment_method=placed.payment_method,
        placed_at=event.recorded_at,
    )


def on_confirmed(event: RecordedEvent) -> None:
    Order.objects.filter(order_id=event.data["order_id"]).update(
        status=Order.Status.CONFIRMED, payment_id=event.data["payment_id"], confirmed_at=event.recorded_at
    )


def on_cancelled(event: RecordedEvent) -> None:
    Order.objects.filter(order_id=event.data["order_id"]).update(
        status=Order.Status.CANCELLED, cancel_reason=event.data["reason"], cancelled_at=event.recorded_at
    )


orders = Projection(
    name="orders",
    title="Orders",
    handlers={"OrderPlaced": on_placed, "OrderConfirmed": on_confirmed, "OrderCancelled": on_cancelled},
    reset=lambda: Order.objects.all().delete(),
)

"""The Order read model: one row per order, folded from typed events a batch at a time."""

from eventstore.projections import Envelope, Row, row_projection
from orders.events import OrderCancelled, OrderConfirmed, OrderPlaced
from orders.models import Order


def on_placed(row: Row | None, e: Envelope) -> Row:
    placed = e.event
    return {
        "customer": placed.customer,
        "amount": placed.amount,
        "currency": placed.currency,
        "payment_method": placed.payment_method,
        "status": Order.Status.PLACED,
        "payment_id": "",
        "cancel_reason": "",
        "placed_at": e.recorded_at,
        "confirmed_at": None,
        "cancelled_at": None,
    }


def on_confirmed(row: Row | None, e: Envelope) -> Row | None:
    if row is None:
        return None  # confirmed without a placement: nothing to show (the log keeps it)
    return {
        **row,
        "status": Order.Status.CONFIRMED,
        "payment_id": e.event.payment_id,
        "confirmed_at": e.recorded_at,
    }


def on_cancelled(row: Row | None, e: Envelope) -> Row | None:
    if row is None:
        return None
    return {
        **row,
        "status": Order.Status.CANCELLED,
        "cancel_reason": e.event.reason,
        "cancelled_at": e.recorded_at,
    }


orders = row_projection(
    name="orders",
    title="Orders",
    model=Order,
    key_field="order_id",
    key=lambda e: e.event.order_id,
    handlers={
        OrderPlaced.event_type: on_placed,
        OrderConfirmed.event_type: on_confirmed,
        OrderCancelled.event_type: on_cancelled,
    },
)

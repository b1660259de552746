"""The Payment read model: one row per order's payment, folded from typed events a batch at a time."""

from eventstore.projections import Envelope, HandlersByName, Row, row_projection
from payments.commands import PAYMENTS_LIST
from payments.events import OrderPlaced, PaymentFailed, PaymentIssued, PaymentStarted
from payments.models import Payment
from todolists.events import TodoAttemptFailed, TodoRetryRequested

# The runner's events about this app's list: keyed by the item, not by an order field.
ITEM_EVENTS = (TodoAttemptFailed.event_type, TodoRetryRequested.event_type)


def _key(e: Envelope) -> str | None:
    if e.type in ITEM_EVENTS:
        return e.event.key if e.event.list == PAYMENTS_LIST else None
    return e.event.order_id


def on_order_placed(row: Row | None, e: Envelope) -> Row:
    placed = e.event
    return {
        "amount": placed.amount,
        "currency": placed.currency,
        "payment_method": placed.payment_method,
        "status": Payment.Status.PENDING,
        "payment_id": "",
        "attempts": 0,
        "last_error": "",
        "decline_code": "",
        "requested_at": e.recorded_at,
        "started_at": None,
        "decided_at": None,
    }


def on_started(row: Row | None, e: Envelope) -> Row | None:
    return {**row, "started_at": row["started_at"] or e.recorded_at} if row else None


def on_issued(row: Row | None, e: Envelope) -> Row | None:
    if row is None:
        return None
    return {
        **row,
        "status": Payment.Status.ISSUED,
        "payment_id": e.event.payment_id,
        "decided_at": e.recorded_at,
    }


def on_failed(row: Row | None, e: Envelope) -> Row | None:
    if row is None:
        return None
    failed = e.event
    return {
        **row,
        "status": Payment.Status.FAILED,
        "decline_code": failed.decline_code,
        "last_error": failed.message,
        "decided_at": e.recorded_at,
    }


def on_attempt_failed(row: Row | None, e: Envelope) -> Row | None:
    return {**row, "attempts": e.event.attempt, "last_error": e.event.error} if row else None


def on_retry(row: Row | None, e: Envelope) -> Row | None:
    # An operator's retry starts the count afresh, as on the list's item.
    if row is None or row["status"] != Payment.Status.PENDING:
        return None
    return {**row, "attempts": 0, "last_error": ""}


payments = row_projection(
    name="payments",
    title="Payments",
    model=Payment,
    key_field="order_id",
    key=_key,
    handlers=HandlersByName(
        {OrderPlaced.event_type: on_order_placed},  # orders' event, known by its published name
        {
            PaymentStarted: on_started,
            PaymentIssued: on_issued,
            PaymentFailed: on_failed,
            TodoAttemptFailed: on_attempt_failed,
            TodoRetryRequested: on_retry,
        },
    ),
)

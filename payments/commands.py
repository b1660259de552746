"""Payment commands: re-check the stream, charge once per order, record the outcome."""

from __future__ import annotations

import enum
from collections.abc import Sequence

from eventstore.store import (
    ConcurrencyError,
    RecordedEvent,
    correlation_read,
    correlations_read,
    event_append,
    stream_read,
)
from payments.events import PaymentFailed, PaymentIssued, PaymentStarted
from payments.gateway import PaymentDeclined, PaymentGateway, get_gateway

OUTCOMES = ("PaymentIssued", "PaymentFailed")


class Outcome(enum.StrEnum):
    ISSUED = "issued"
    FAILED = "failed"
    ALREADY_DECIDED = "already decided"
    ORDER_CANCELLED = "order cancelled"


def payment_stream(order_id: str) -> str:
    return f"payment-{order_id}"


def payment_idempotency_key(order_id: str) -> str:
    """One PaymentIntent per order, however many workers or retries ask."""
    return f"order-{order_id}-payment"


def payments_read(*, order_ids: Sequence[str]) -> dict[str, list[RecordedEvent]]:
    """Every event of these orders (their cases, across streams), in one query: a batch's re-check."""
    return correlations_read(correlation_ids=order_ids)


def payment_issue(
    *, order_id: str, gateway: PaymentGateway | None = None, case: Sequence[RecordedEvent] | None = None
) -> Outcome:
    """Charge the order's payment unless its outcome is already recorded, and record the outcome.

    `case` is the order's events across streams (see `payments_read`), read after the caller's
    lease was renewed; without it they are read here. Raises GatewayUnavailable (or any
    unexpected error) for the runner to record as a failed attempt.
    """
    stream = payment_stream(order_id)
    if case is None:
        case = correlation_read(correlation_id=order_id)
    history = [e for e in case if e.stream_id == stream]
    if any(e.type in OUTCOMES for e in history):
        return Outcome.ALREADY_DECIDED  # a lagging list or a second worker: never charge again
    if any(e.type == "OrderCancelled" for e in case):
        return Outcome.ORDER_CANCELLED  # nothing to charge; the cancellation closes the item
    [placed] = [e for e in case if e.type == "OrderPlaced"]
    version = len(history)
    if not any(e.type == "PaymentStarted" for e in history):
        try:
            _start(order_id=order_id, expected_version=version, causation_id=str(placed.position))
        except _OrderCancelled:
            return Outcome.ORDER_CANCELLED  # nothing to charge; the cancellation closes the item
        version += 1
    order = placed.event
    amount, currency = order.amount, order.currency
    gateway = gateway or get_gateway()
    try:
        charge = gateway.charge(
            idempotency_key=payment_idempotency_key(order_id),
            order_id=order_id,
            amount=amount,
            currency=currency,
            payment_method=order.payment_method,
        )
        event = PaymentIssued(
            order_id=order_id, payment_id=charge.payment_id, amount=amount, currency=currency
        )
        outcome = Outcome.ISSUED
    except PaymentDeclined as declined:
        event = PaymentFailed(order_id=order_id, decline_code=declined.code, message=declined.message)
        outcome = Outcome.FAILED
    try:
        event_append(
            stream_id=stream,
            events=[event],
            expected_version=version,
            correlation_id=order_id,
            causation_id=str(placed.position),
            actor="automation",
        )
    except ConcurrencyError:
        # Someone appended meanwhile. If it was the outcome, the gateway's idempotency made it the
        # same charge; otherwise let the runner try again.
        if any(e.type in OUTCOMES for e in stream_read(stream_id=stream)):
            return Outcome.ALREADY_DECIDED
        raise
    return outcome


class _OrderCancelled(Exception):
    pass


def _start(*, order_id: str, expected_version: int, causation_id: str) -> None:
    def order_not_cancelled() -> None:
        # Runs under the log's append lock: no cancellation can slip in between check and append.
        if correlation_read(correlation_id=order_id, types=["OrderCancelled"]):
            raise _OrderCancelled

    event_append(
        stream_id=payment_stream(order_id),
        events=[PaymentStarted(order_id=order_id, idempotency_key=payment_idempotency_key(order_id))],
        expected_version=expected_version,
        correlation_id=order_id,
        causation_id=causation_id,
        actor="automation",
        guard=order_not_cancelled,
    )

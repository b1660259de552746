"""Payment commands: re-check the stream, charge once per order, record the outcome."""

from __future__ import annotations

import enum
from collections.abc import Sequence

from eventstore.store import (
    ConcurrencyError,
    RecordedEvent,
    correlation_read,
    event_append,
    stream_read,
)
from payments.events import PaymentFailed, PaymentIssued, PaymentStarted
from payments.gateway import PaymentDeclined, PaymentGateway, get_gateway

OUTCOMES = ("PaymentIssued", "PaymentFailed")
PAYMENTS_LIST = "payments_to_issue"  # the list payments owns (payments/todo.py)
# What decides whether a parked payment may still be given up (the runner's events are read by name).
GIVE_UP_FACTS = ("TodoItemParked", "TodoRetryRequested", "OrderCancelled")


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


def payment_issue(
    *, order_id: str, gateway: PaymentGateway | None = None, case: Sequence[RecordedEvent] | None = None
) -> Outcome:
    """Charge the order's payment unless its outcome is already recorded, and record the outcome.

    `case` is the order's events across streams (`correlations_read`), read after the caller's
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


# --- giving up on a parked payment (an operator's decision, from the admin) --------------------

GIVEN_UP = "given_up"


class GiveUpRefused(ValueError):
    """The payment cannot be given up now; the message says why and what to do instead."""


def payment_give_up(
    *, order_id: str, actor: str, gateway: PaymentGateway | None = None, reason: str = ""
) -> Outcome:
    """Decide a parked payment for good: ask the gateway whether a charge succeeded under the
    order's idempotency key. If one did, record PaymentIssued (the order gets confirmed: money
    is never forgotten); if none did, record PaymentFailed with decline code "given_up" (the
    order gets cancelled: no money is taken for it). Appends at the stream version read here, so
    an outcome recorded meanwhile by a worker wins and this refuses.

    Raises GiveUpRefused, or GatewayUnavailable when the gateway cannot tell (try again later).
    """
    from django.utils import timezone

    from todolists.models import TodoItem

    item = TodoItem.objects.filter(list_name=PAYMENTS_LIST, key=order_id).first()
    if item is None or item.status != TodoItem.Status.PARKED:
        raise GiveUpRefused(
            f"payment of order {order_id} is not parked ({item.status if item else 'no item'}); "
            "only a parked payment can be given up"
        )
    if item.claimed_until and item.claimed_until >= timezone.now():
        raise GiveUpRefused(
            f"payment of order {order_id} is being worked by {item.claimed_by}; try again later"
        )
    gateway = gateway or get_gateway()
    if item.parked_at and timezone.now() - item.parked_at < gateway.find_charge_lag:
        # e.g. Stripe's search index lags its writes: a charge that recent might not show yet.
        raise GiveUpRefused(
            f"payment of order {order_id} was parked less than {gateway.find_charge_lag} ago; "
            "the gateway may not show a charge that recent yet, try again shortly"
        )
    stream = payment_stream(order_id)
    history = stream_read(stream_id=stream)
    if any(e.type in OUTCOMES for e in history):
        raise GiveUpRefused(f"payment of order {order_id} is already decided")
    charge = gateway.find_charge(idempotency_key=payment_idempotency_key(order_id))
    if charge is not None:
        [placed] = correlation_read(correlation_id=order_id, types=["OrderPlaced"])
        order = placed.event
        event = PaymentIssued(
            order_id=order_id, payment_id=charge.payment_id, amount=order.amount, currency=order.currency
        )
    else:
        event = PaymentFailed(
            order_id=order_id,
            decline_code=GIVEN_UP,
            message=f"given up by {actor}: no charge under its key" + (f" ({reason})" if reason else ""),
        )

    def still_parked_and_open() -> None:
        # Under the order's lock, which an operator's retry takes too: a retry recorded since this
        # began (a worker may be charging) or a cancellation makes this refuse.
        case = correlation_read(correlation_id=order_id, types=GIVE_UP_FACTS)
        last = [e for e in case if e.type != "OrderCancelled" and e.event.list == PAYMENTS_LIST][-1:]
        if not last or last[0].type != "TodoItemParked":
            raise GiveUpRefused(f"payment of order {order_id} was retried meanwhile; look again")
        if any(e.type == "OrderCancelled" for e in case):
            raise GiveUpRefused(f"order {order_id} is cancelled already")

    try:
        event_append(
            stream_id=stream,
            events=[event],
            expected_version=len(history),
            correlation_id=order_id,
            actor=actor,
            guard=still_parked_and_open,
        )
    except ConcurrencyError:
        raise GiveUpRefused(
            f"payment of order {order_id} changed while giving up (a worker recorded something); look again"
        ) from None
    return Outcome.ISSUED if charge is not None else Outcome.FAILED

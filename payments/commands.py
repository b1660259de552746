"""Payment commands: re-check the stream, charge once per order, record the outcome."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Any

from eventstore.store import (
    ConcurrencyError,
    RecordedEvent,
    correlation_read,
    event_append,
    stream_read,
)
from payments.errors import GiveUpRefused, Refusal
from payments.events import OrderCancelled, OrderPlaced, PaymentFailed, PaymentIssued, PaymentStarted
from payments.gateway import Charge, GatewayUnavailable, PaymentDeclined, PaymentGateway, payment_gateway
from todolists.errors import Refusal as TodoRefusal
from todolists.errors import TodoRefused
from todolists.events import TodoItemParked, TodoRetryRequested
from todolists.operator import todo_item_parked

OUTCOMES = (PaymentIssued.event_type, PaymentFailed.event_type)
PAYMENTS_LIST = "payments_to_issue"  # the list payments owns (payments/todo.py)
# What decides whether a parked payment may still be given up.
GIVE_UP_FACTS = (TodoItemParked.event_type, TodoRetryRequested.event_type, OrderCancelled.event_type)


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


def _decided(events: Sequence[RecordedEvent]) -> bool:
    return any(e.type in OUTCOMES for e in events)


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
    if _decided(history):
        return Outcome.ALREADY_DECIDED  # a lagging list or a second worker: never charge again
    if any(e.type == OrderCancelled.event_type for e in case):
        return Outcome.ORDER_CANCELLED  # nothing to charge; the cancellation closes the item
    [placed] = [e for e in case if e.type == OrderPlaced.event_type]
    version = len(history)
    if not any(e.type == PaymentStarted.event_type for e in history):
        try:
            _start(order_id=order_id, expected_version=version, causation_id=str(placed.position))
        except _OrderCancelled:
            return Outcome.ORDER_CANCELLED  # nothing to charge; the cancellation closes the item
        version += 1
    event = _charge(order_id=order_id, order=placed.event, gateway=gateway or payment_gateway())
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
        if _decided(stream_read(stream_id=stream)):
            return Outcome.ALREADY_DECIDED
        raise
    return Outcome.ISSUED if isinstance(event, PaymentIssued) else Outcome.FAILED


def _charge(*, order_id: str, order: OrderPlaced, gateway: PaymentGateway) -> PaymentIssued | PaymentFailed:
    """The charge's outcome as the event to record (GatewayUnavailable: nothing is decided)."""
    try:
        charge = gateway.charge(
            idempotency_key=payment_idempotency_key(order_id),
            order_id=order_id,
            amount=order.amount,
            currency=order.currency,
            payment_method=order.payment_method,
        )
    except PaymentDeclined as declined:
        return PaymentFailed(order_id=order_id, decline_code=declined.code, message=declined.message)
    return PaymentIssued(
        order_id=order_id, payment_id=charge.payment_id, amount=order.amount, currency=order.currency
    )


class _OrderCancelled(Exception):
    pass


def _start(*, order_id: str, expected_version: int, causation_id: str) -> None:
    def order_not_cancelled() -> None:
        # Runs under the log's append lock: no cancellation can slip in between check and append.
        if correlation_read(correlation_id=order_id, types=[OrderCancelled.event_type]):
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

# What todolists says about the item, in payments' words.
_NOT_GIVABLE = {TodoRefusal.HELD: Refusal.HELD}


def payment_give_up(
    *, order_id: str, actor: str, reason: str = "", gateway: PaymentGateway | None = None
) -> Outcome:
    """Decide a parked payment for good: ask the gateway whether a charge succeeded under the
    order's idempotency key. If one did, record PaymentIssued (the order gets confirmed: money
    is never forgotten); if none did, record PaymentFailed with decline code "given_up" (the
    order gets cancelled: no money is taken for it). Appends at the stream version read here, so
    an outcome recorded meanwhile by a worker wins and this refuses.

    Raises GiveUpRefused (its `code` says why), or GatewayUnavailable when the gateway cannot
    tell (try again later).
    """
    gateway = gateway or payment_gateway()
    _check_givable(order_id=order_id, gateway=gateway)
    stream = payment_stream(order_id)
    history = stream_read(stream_id=stream)
    if _decided(history):
        raise GiveUpRefused(f"payment of order {order_id} is already decided", code=Refusal.DECIDED)
    charge = gateway.find_charge(idempotency_key=payment_idempotency_key(order_id))
    try:
        event_append(
            stream_id=stream,
            events=[_given_up(order_id=order_id, charge=charge, actor=actor, reason=reason)],
            expected_version=len(history),
            correlation_id=order_id,
            actor=actor,
            guard=lambda: _still_parked_and_open(order_id),
        )
    except ConcurrencyError:
        raise GiveUpRefused(
            f"payment of order {order_id} changed while giving up (a worker recorded something); look again",
            code=Refusal.CHANGED,
        ) from None
    return Outcome.ISSUED if charge is not None else Outcome.FAILED


def _check_givable(*, order_id: str, gateway: PaymentGateway) -> None:
    """Parked, held by no worker, and parked long enough for the gateway to show its charges."""
    try:
        parked = todo_item_parked(list_name=PAYMENTS_LIST, key=order_id)
    except TodoRefused as refused:
        raise GiveUpRefused(
            f"payment of order {order_id}: {refused}; only a parked payment no worker holds can be given up",
            code=_NOT_GIVABLE.get(refused.code, Refusal.NOT_PARKED),
        ) from None
    if parked.parked_for < gateway.find_charge_lag:
        # e.g. Stripe's search index lags its writes: a charge that recent might not show yet.
        raise GiveUpRefused(
            f"payment of order {order_id} was parked less than {gateway.find_charge_lag} ago; "
            "the gateway may not show a charge that recent yet, try again shortly",
            code=Refusal.TOO_RECENT,
        )


def _given_up(
    *, order_id: str, charge: Charge | None, actor: str, reason: str = ""
) -> PaymentIssued | PaymentFailed:
    """The outcome to record: the charge the gateway took under the order's key, or none."""
    if charge is None:
        return PaymentFailed(
            order_id=order_id,
            decline_code=GIVEN_UP,
            message=f"given up by {actor}: no charge under its key" + (f" ({reason})" if reason else ""),
        )
    [placed] = correlation_read(correlation_id=order_id, types=[OrderPlaced.event_type])
    order = placed.event_as(OrderPlaced)
    return PaymentIssued(
        order_id=order_id, payment_id=charge.payment_id, amount=order.amount, currency=order.currency
    )


def _item_event(e: RecordedEvent) -> TodoItemParked | TodoRetryRequested:
    """A parking or retry of an item (GIVE_UP_FACTS, less the cancellation)."""
    event = e.event
    if not isinstance(event, TodoItemParked | TodoRetryRequested):
        raise TypeError(f"event {e.position} is a {e.type}, not an item's parking or retry")
    return event


def _still_parked_and_open(order_id: str) -> None:
    """The give-up's guard. Under the order's lock, which an operator's retry takes too: a retry
    recorded since this began (a worker may be charging) or a cancellation makes it refuse."""
    case = correlation_read(correlation_id=order_id, types=GIVE_UP_FACTS)
    cancelled = [e for e in case if e.type == OrderCancelled.event_type]
    last = [e for e in case if e.type != OrderCancelled.event_type and _item_event(e).list == PAYMENTS_LIST][
        -1:
    ]
    if not last or last[0].type != TodoItemParked.event_type:
        raise GiveUpRefused(
            f"payment of order {order_id} was retried meanwhile; look again", code=Refusal.RETRIED
        )
    if cancelled:
        raise GiveUpRefused(f"order {order_id} is cancelled already", code=Refusal.ORDER_CANCELLED)


def payment_give_up_parked(*, item: Any, reason: str, actor: str) -> Outcome:
    """Give up on the payment of a parked item of the payments list (the dashboard's error group
    action): a gateway that cannot tell is a refusal for that item, like any other."""
    try:
        return payment_give_up(order_id=item.key, actor=actor, reason=reason)
    except GatewayUnavailable as exc:
        raise GiveUpRefused(
            f"the gateway cannot tell whether order {item.key} was charged: {exc}", code=Refusal.GATEWAY
        ) from None

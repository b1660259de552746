"""Payment commands: re-check the stream, charge once per order, record the outcome."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from eventstore.store import (
    Append,
    CaseCheck,
    ConcurrencyError,
    RecordedEvent,
    correlation_read,
    event_append,
    events_append,
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
    """Charge one order's payment unless its outcome is already recorded, and record the outcome
    (`payments_issue` for a batch of one). Raises what it would return as the order's error."""
    cases = {order_id: case if case is not None else correlation_read(correlation_id=order_id)}
    result = payments_issue(cases=cases, gateway=gateway)[order_id]
    if isinstance(result, Exception):
        raise result
    return result


ChargeEach = Callable[[Sequence[str], Callable[[str], object]], Mapping[str, Exception | None]]
"""How a batch's charges run: `act` on each order id, {order id: None or the error}; an order
left out (a deadline) is neither charged nor decided."""


def _one_by_one(order_ids: Sequence[str], act: Callable[[str], object]) -> dict[str, Exception | None]:
    errors: dict[str, Exception | None] = {}
    for order_id in order_ids:
        try:
            act(order_id)
            errors[order_id] = None
        except Exception as exc:
            errors[order_id] = exc
    return errors


def payments_issue(
    *,
    cases: Mapping[str, Sequence[RecordedEvent]],
    gateway: PaymentGateway | None = None,
    charge_each: ChargeEach = _one_by_one,
) -> dict[str, Outcome | Exception]:
    """Charge a batch of orders' payments, each unless its outcome is already recorded.

    `cases` holds each order's events across streams (`correlations_read`), read after the
    caller's lease was renewed. Three steps: `PaymentStarted` for the orders that need it, in
    one append (checked against a cancellation under the cases' lock); the charges
    (`charge_each`: concurrently when the gateway is network-bound); the outcomes, in one
    append (each on its own as it comes, when the gateway is network-bound). Returns each
    order's Outcome, or its error (GatewayUnavailable, a ConcurrencyError, ...) for the runner
    to record as a failed attempt.
    A crash between a charge and its outcome loses nothing: the retry charges again under the
    same idempotency key and the gateway answers with the first charge.
    """
    gateway = gateway or payment_gateway()
    results, plans = _plan(cases)
    results.update(_start(plans))
    events: dict[str, PaymentIssued | PaymentFailed] = {}
    # A network-bound gateway's answer takes far longer than a commit: record each outcome as it
    # comes rather than keep the batch's first outcomes waiting for its last charge.
    at_once = gateway.max_concurrency > 1

    def charge(order_id: str) -> None:
        event = _charge(order_id=order_id, order=plans[order_id].order, gateway=gateway)
        if at_once:
            results.update(_record(plans, {order_id: event}))
        else:
            events[order_id] = event

    to_charge = [o for o in plans if o not in results]
    for order_id, error in charge_each(to_charge, charge).items():
        if error is not None:
            results[order_id] = error
    results.update(_record(plans, events))
    return results


@dataclasses.dataclass
class _Plan:
    """What an order's payment needs, as its case says."""

    order: OrderPlaced
    causation_id: str
    version: int  # the payment stream's version, before the start if it needs one
    started: bool


def _plan(
    cases: Mapping[str, Sequence[RecordedEvent]],
) -> tuple[dict[str, Outcome | Exception], dict[str, _Plan]]:
    """The orders decided already (their outcome) or unreadable (the error), and what each other
    order needs."""
    results: dict[str, Outcome | Exception] = {}
    plans: dict[str, _Plan] = {}
    for order_id, case in cases.items():
        try:
            plan = _plan_one(order_id, case)
        except Exception as exc:  # e.g. an OrderPlaced that cannot be read: this order's failure only
            results[order_id] = exc
            continue
        if isinstance(plan, _Plan):
            plans[order_id] = plan
        else:
            results[order_id] = plan
    return results, plans


def _plan_one(order_id: str, case: Sequence[RecordedEvent]) -> _Plan | Outcome:
    history = [e for e in case if e.stream_id == payment_stream(order_id)]
    if _decided(history):
        return Outcome.ALREADY_DECIDED  # a lagging list or a second worker: never charge again
    if any(e.type == OrderCancelled.event_type for e in case):
        return Outcome.ORDER_CANCELLED  # nothing to charge; the cancellation closes the item
    [placed] = [e for e in case if e.type == OrderPlaced.event_type]
    started = any(e.type == PaymentStarted.event_type for e in history)
    return _Plan(placed.event_as(OrderPlaced), str(placed.position), len(history), started)


def _start(plans: Mapping[str, _Plan]) -> dict[str, Outcome | Exception]:
    """Record PaymentStarted for the orders that need it, in one append; checked under the
    cases' lock, so no cancellation slips in between the check and the start."""
    appends = [
        Append(
            stream_id=payment_stream(order_id),
            event=PaymentStarted(order_id=order_id, idempotency_key=payment_idempotency_key(order_id)),
            expected_version=plan.version,
            correlation_id=order_id,
            causation_id=plan.causation_id,
        )
        for order_id, plan in plans.items()
        if not plan.started
    ]
    results: dict[str, Outcome | Exception] = {}
    for append, result in zip(
        appends, events_append(appends=appends, actor="automation", check=NOT_CANCELLED), strict=True
    ):
        order_id = append.correlation_id
        if isinstance(result, _OrderCancelled):
            results[order_id] = Outcome.ORDER_CANCELLED  # nothing to charge; the cancellation closes the item
        elif isinstance(result, Exception):
            results[order_id] = result
        else:
            plans[order_id].version += 1
    return results


def _record(
    plans: Mapping[str, _Plan], events: Mapping[str, PaymentIssued | PaymentFailed]
) -> dict[str, Outcome | Exception]:
    """Append the batch's outcomes in one transaction."""
    appends = [
        Append(
            stream_id=payment_stream(order_id),
            event=event,
            expected_version=plans[order_id].version,
            correlation_id=order_id,
            causation_id=plans[order_id].causation_id,
        )
        for order_id, event in events.items()
    ]
    results: dict[str, Outcome | Exception] = {}
    recorded = events_append(appends=appends, actor="automation")
    for append, result in zip(appends, recorded, strict=True):
        order_id = append.correlation_id
        if not isinstance(result, Exception):
            results[order_id] = Outcome.ISSUED if isinstance(append.event, PaymentIssued) else Outcome.FAILED
        elif isinstance(result, ConcurrencyError) and _decided(stream_read(stream_id=append.stream_id)):
            # Someone recorded the outcome meanwhile: the gateway's idempotency made it the same charge.
            results[order_id] = Outcome.ALREADY_DECIDED
        else:
            results[order_id] = result  # something else moved the stream: the runner tries again
    return results


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


def _not_cancelled(append: Append, facts: Sequence[RecordedEvent]) -> Exception | None:
    return _OrderCancelled() if facts else None


# A payment starts only for an order not cancelled, read afresh under the cases' lock.
NOT_CANCELLED = CaseCheck(types=[OrderCancelled.event_type], refuse=_not_cancelled)


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

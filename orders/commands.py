"""Order commands: load the stream, decide, append. Raise OrderRejected with its code and reason."""

from __future__ import annotations

import dataclasses
import decimal
import re
import unicodedata
import uuid
from collections.abc import Callable, Mapping, Sequence

from eventstore.events import InvalidEvent
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
from orders.errors import OrderNotOpen, OrderRejected, Refusal
from orders.events import (
    OrderCancelled,
    OrderConfirmed,
    OrderPlaced,
    PaymentFailed,
    PaymentIssued,
    PaymentStarted,
)
from orders.models import Order

# ISO 4217 codes the shop sells in: two-decimal currencies only, because amounts carry at most 2
# places. The smallest charge per currency is the payment gateway's rule, checked on append.
CURRENCIES = frozenset({"AUD", "CAD", "CHF", "CZK", "DKK", "EUR", "GBP", "NOK", "PLN", "SEK", "USD"})
MAX_AMOUNT = decimal.Decimal("999999.99")  # Stripe's ceiling for a single charge in these currencies
PAYMENT_METHOD = re.compile(r"pm_[A-Za-z0-9_]{1,96}")  # always fullmatch: `$` would allow a final newline
# ASCII digits only: no other scripts' digits, no `_` separators, no exponent, no sign.
AMOUNT = re.compile(r"[0-9]+(?:\.[0-9]{1,2})?")
CURRENCY = re.compile(r"[A-Za-z]{3}")
ORDER_ID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# Refused in every text field: controls (NUL, newlines, escapes), invisible format characters
# (bidi overrides, zero-width joiners) and lone surrogates (bytes argv could not decode).
FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs"})


# The payment facts a cancellation depends on (payments' published events: see pyproject's contracts).
PAYMENT_FACTS = (PaymentStarted.event_type, PaymentIssued.event_type, PaymentFailed.event_type)


def _invalid(message: str) -> OrderRejected:
    return OrderRejected(message, code=Refusal.INVALID_INPUT)


def order_stream(order_id: str) -> str:
    return f"order-{order_id}"


def _state(events: Sequence[RecordedEvent]) -> Order.Status | None:
    """What the order's own stream says it is; None when it was never placed."""
    if not events:
        return None
    types = {e.type for e in events}
    if OrderCancelled.event_type in types:
        return Order.Status.CANCELLED
    if OrderConfirmed.event_type in types:
        return Order.Status.CONFIRMED
    return Order.Status.PLACED


def _text(field: str, value: object) -> str:
    """`value` if it is text free of control characters; else a refusal naming the field."""
    if not isinstance(value, str):
        raise _invalid(f"{field} must be text, not {type(value).__name__}")
    for char in value:
        if unicodedata.category(char) in FORBIDDEN_CATEGORIES:
            raise _invalid(
                f"{field} must not contain control or invisible characters (found U+{ord(char):04X})"
            )
    return value


def _amount_problem(text: str) -> str:
    """Why `text` is not an amount, in the words the user wrote it in."""
    if text.startswith("-") or text.lower().lstrip("+") in ("nan", "snan", "inf", "infinity"):
        return f"amount must be positive, got {text}"
    if re.fullmatch(r"[0-9]+\.[0-9]{3,}", text):
        return f"amount {text} has more than 2 decimal places"
    return f"amount {text!r} is not a number written as ASCII digits with at most 2 decimals, like 12.50"


def parse_amount(amount: decimal.Decimal | str) -> decimal.Decimal:
    text = _text("amount", str(amount)).strip()
    if not AMOUNT.fullmatch(text):
        raise _invalid(_amount_problem(text))
    value = decimal.Decimal(text)
    if value <= 0:
        raise _invalid(f"amount must be positive, got {text}")
    if value > MAX_AMOUNT:
        raise _invalid(f"amount {text} is above the limit of {MAX_AMOUNT}")
    return value.quantize(decimal.Decimal("0.01"))


def _order_id(order_id: str | None) -> str:
    """A new id for None; the canonical form of a given UUID; an empty one is refused, not replaced."""
    if order_id is None:
        return str(uuid.uuid4())
    if not _text("order id", order_id):
        raise _invalid("order id must not be empty (leave it out for a new one)")
    if not ORDER_ID.fullmatch(order_id):
        raise _invalid(f"order id {order_id!r} is not a UUID")
    return str(uuid.UUID(order_id))


def order_place(
    *,
    amount: decimal.Decimal | str,
    currency: str,
    customer: str = "guest",
    payment_method: str = "pm_card_visa",
    order_id: str | None = None,
    actor: str = "system",
) -> str:
    """Place an order; returns its id. Opens an item on "payments to issue"."""
    value = parse_amount(amount)
    currency = _text("currency", currency).strip()
    if not CURRENCY.fullmatch(currency) or currency.upper() not in CURRENCIES:
        raise _invalid(f"currency {currency!r} is not supported (use one of {', '.join(sorted(CURRENCIES))})")
    currency = currency.upper()
    customer = _text("customer", customer).strip()
    if not customer or len(customer) > 200:
        raise _invalid("customer must be 1 to 200 characters")
    if not PAYMENT_METHOD.fullmatch(_text("payment method", payment_method)):
        raise _invalid(f"payment method {payment_method!r} is not a payment method id like pm_card_visa")
    order_id = _order_id(order_id)
    event = OrderPlaced(
        order_id=order_id, customer=customer, amount=value, currency=currency, payment_method=payment_method
    )
    try:
        event_append(
            stream_id=order_stream(order_id),
            events=[event],
            expected_version=0,
            correlation_id=order_id,
            actor=actor,
        )
    except ConcurrencyError:
        raise OrderRejected(
            f"order {order_id} has already been placed", code=Refusal.ALREADY_PLACED
        ) from None
    except InvalidEvent as exc:
        raise OrderRejected(
            exc.reason, code=Refusal.UNCHARGEABLE
        ) from None  # e.g. below the gateway's smallest charge
    return order_id


def _load_open(order_id: str, action: str, case: Sequence[RecordedEvent] | None) -> list[RecordedEvent]:
    """The order's stream, which must be open; `case` holds it already when the caller read it."""
    if case is None:
        events = stream_read(stream_id=order_stream(order_id))
    else:
        events = [e for e in case if e.stream_id == order_stream(order_id)]
    state = _state(events)
    if state is None:
        raise OrderRejected(f"order {order_id} does not exist", code=Refusal.NOT_FOUND)
    if state != Order.Status.PLACED:
        raise OrderNotOpen(f"cannot {action} order {order_id}: it is already {state}", state=state)
    return events


def order_confirm(
    *, order_id: str, actor: str = "system", case: Sequence[RecordedEvent] | None = None
) -> None:
    """Confirm a paid, open order (paid: a PaymentIssued for it is in the log).

    `case`: the order's events across streams, when the caller read them already.
    """
    cases = {order_id: case if case is not None else correlation_read(correlation_id=order_id)}
    _raise(orders_confirm(cases=cases, actor=actor)[order_id])


def orders_confirm(
    *, cases: Mapping[str, Sequence[RecordedEvent]], actor: str = "system"
) -> dict[str, Exception | None]:
    """Confirm each paid, open order of a batch, with one append for all. `cases` holds each
    order's events across streams (`correlations_read`). Per order None, or why it was not
    confirmed (OrderRejected, OrderNotOpen, ConcurrencyError)."""
    return _decided(cases, _confirmation, actor=actor)


def _confirmation(order_id: str, case: Sequence[RecordedEvent]) -> Append:
    events = _load_open(order_id, "confirm", case)
    issued = [e for e in case if e.type == PaymentIssued.event_type]
    if not issued:
        raise OrderRejected(f"cannot confirm order {order_id}: it has not been paid", code=Refusal.NOT_PAID)
    return Append(
        stream_id=order_stream(order_id),
        event=OrderConfirmed(order_id=order_id, payment_id=issued[-1].event_as(PaymentIssued).payment_id),
        expected_version=len(events),
        correlation_id=order_id,
        causation_id=str(issued[-1].position),
    )


def order_cancel(
    *,
    order_id: str,
    reason: str,
    actor: str = "system",
    causation_id: str = "",
    case: Sequence[RecordedEvent] | None = None,
) -> None:
    """Cancel an open order whose payment has not started, or has failed.

    Once a charge may be under way (PaymentStarted) the order waits for the payment's outcome: a
    cancellation must never race a charge, and refunds are not part of this process. `case` as
    for order_confirm; the payment check always reads afresh, under the append lock.
    """
    cases = {order_id: case if case is not None else correlation_read(correlation_id=order_id)}
    _raise(
        orders_cancel(cancels={order_id: Cancellation(reason, causation_id)}, cases=cases, actor=actor)[
            order_id
        ]
    )


@dataclasses.dataclass(frozen=True)
class Cancellation:
    reason: str
    causation_id: str = ""


def orders_cancel(
    *,
    cancels: Mapping[str, Cancellation],
    cases: Mapping[str, Sequence[RecordedEvent]],
    actor: str = "system",
) -> dict[str, Exception | None]:
    """Cancel each open order of a batch (as `order_cancel`), with one append for all. Per order
    None, or why it was not cancelled (OrderRejected, OrderNotOpen, ConcurrencyError)."""

    def cancellation(order_id: str, case: Sequence[RecordedEvent]) -> Append:
        cancel = cancels[order_id]
        _text("cancel reason", cancel.reason)
        events = _load_open(order_id, "cancel", case)
        return Append(
            stream_id=order_stream(order_id),
            event=OrderCancelled(order_id=order_id, reason=cancel.reason),
            expected_version=len(events),
            correlation_id=order_id,
            causation_id=cancel.causation_id,
        )

    return _decided({o: cases[o] for o in cancels}, cancellation, actor=actor, check=PAYMENT_ALLOWS_CANCEL)


def _payment_refuses_cancel(append: Append, payment: Sequence[RecordedEvent]) -> Exception | None:
    order_id = append.correlation_id
    facts = {e.type for e in payment}
    if PaymentIssued.event_type in facts:
        return OrderRejected(
            f"cannot cancel order {order_id}: it has been paid (refunds are not supported)", code=Refusal.PAID
        )
    if PaymentStarted.event_type in facts and PaymentFailed.event_type not in facts:
        return OrderRejected(
            f"cannot cancel order {order_id}: its payment is in progress; cancel it once the payment "
            'has failed; retry the parked payment, or give it up (Payments: "Give up on a parked payment")',
            code=Refusal.PAYMENT_IN_PROGRESS,
        )
    return None


# Read afresh under the cases' lock, so no payment starts between the check and the cancellation.
PAYMENT_ALLOWS_CANCEL = CaseCheck(types=PAYMENT_FACTS, refuse=_payment_refuses_cancel)


def _decided(
    cases: Mapping[str, Sequence[RecordedEvent]],
    decide: Callable[[str, Sequence[RecordedEvent]], Append],
    *,
    actor: str,
    check: CaseCheck | None = None,
) -> dict[str, Exception | None]:
    """Decide each order (`decide` raises why not), then append every decision in one go."""
    errors: dict[str, Exception | None] = {}
    appends: list[Append] = []
    for order_id, case in cases.items():
        try:
            appends.append(decide(order_id, case))
        except Exception as exc:
            errors[order_id] = exc
    for append, result in zip(appends, events_append(appends=appends, actor=actor, check=check), strict=True):
        errors[append.correlation_id] = result if isinstance(result, Exception) else None
    return errors


def _raise(error: Exception | None) -> None:
    if error is not None:
        raise error

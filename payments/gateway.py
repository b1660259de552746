"""The payment gateway port and its two adapters.

`charge` either returns a Charge (money taken), raises PaymentDeclined (a business outcome: do
not retry), or raises GatewayUnavailable (transient: try again later with the same idempotency
key, which can never charge twice).
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import random
import secrets
import time
from typing import Any, Protocol

from django.apps import apps
from django.db import connection
from django.utils import timezone

from eventstore.backends.base import column
from eventstore.events import InvalidEvent
from payments.apps import PaymentsConfig
from payments.conf import conf
from payments.models import InProcessCharge


@dataclasses.dataclass(frozen=True)
class Charge:
    payment_id: str


class PaymentDeclined(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class GatewayUnavailable(Exception):
    """Timeout, connection error, 5xx, rate limit: nothing is known to be decided yet."""


class PaymentGateway(Protocol):
    max_concurrency: int
    """How many charges the runner may have in flight at once (each in its own thread)."""
    find_charge_lag: datetime.timedelta
    """How long after a charge `find_charge` may still not see it."""

    def charge(
        self,
        *,
        idempotency_key: str,
        order_id: str,
        amount: decimal.Decimal,
        currency: str,
        payment_method: str,
    ) -> Charge: ...

    def find_charge(self, *, idempotency_key: str) -> Charge | None:
        """The charge that succeeded under this key, None if none did; raises GatewayUnavailable
        when the gateway cannot tell (down, or a charge still in flight)."""
        ...


# The smallest charge Stripe takes per currency (https://docs.stripe.com/currencies#minimum-and-maximum-charge-amounts).
MIN_AMOUNTS = {
    code: decimal.Decimal(minimum)
    for code, minimum in {
        "AUD": "0.50", "CAD": "0.50", "CHF": "0.50", "CZK": "15.00", "DKK": "2.50", "EUR": "0.50",
        "GBP": "0.30", "NOK": "3.00", "PLN": "2.00", "SEK": "3.00", "USD": "0.50",
    }.items()
}  # fmt: skip


def order_chargeable(order: Any) -> None:
    """The gateway's rule on OrderPlaced, checked when it is appended: never accept an order we
    could not charge (orders refuses it at placement without knowing this app)."""
    minimum = MIN_AMOUNTS.get(order.currency)
    if minimum is None:
        raise InvalidEvent(order.event_type, f"payments cannot charge in {order.currency}")
    if order.amount < minimum:
        raise InvalidEvent(
            order.event_type,
            f"amount {order.amount} {order.currency} is below the smallest charge of {minimum}",
        )


def to_minor_units(amount: decimal.Decimal) -> int:
    return int((amount * 100).to_integral_value())


# Stripe's test payment methods (https://docs.stripe.com/testing), as far as we follow them.
DECLINES = {
    "pm_card_chargeCustomerFail": ("card_declined", "Your card was declined."),
    "pm_card_visa_chargeDeclined": ("card_declined", "Your card was declined."),
    "pm_card_visa_chargeDeclinedInsufficientFunds": (
        "insufficient_funds",
        "Your card has insufficient funds.",
    ),
    "pm_card_visa_chargeDeclinedExpiredCard": ("expired_card", "Your card has expired."),
}


def _insert_new(charge: InProcessCharge) -> bool:
    """INSERT ... ON CONFLICT (idempotency_key) DO NOTHING: did this request create the charge?"""
    charge.created_at = timezone.now()
    fields = [f for f in InProcessCharge._meta.concrete_fields if not f.primary_key]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {InProcessCharge._meta.db_table} ({', '.join(column(f) for f in fields)})"
            f" VALUES ({', '.join(['%s'] * len(fields))}) ON CONFLICT (idempotency_key) DO NOTHING RETURNING id",
            [f.get_db_prep_save(getattr(charge, f.attname), connection) for f in fields],
        )
        row = cursor.fetchone()
    charge.pk = row[0] if row else None
    return row is not None


class InProcessGateway:
    """A stand-in for Stripe that lives in our database: the default, for demos and fault tests.

    Idempotency as Stripe has it: the first request with a key decides, and every later request
    with that key gets the same result (the same charge, or the same decline) without charging.
    """

    find_charge_lag = datetime.timedelta(0)  # one database: a charge is visible once committed

    def __init__(
        self, *, latency_ms: int = 0, failure_rate: float = 0.0, rng: random.Random | None = None
    ) -> None:
        # Threads pay only while a charge waits on a network: with a latency standing in for one,
        # charge 4 at a time like Stripe (the unique key makes it thread-safe); without, a charge
        # is one insert, and a thread would cost a connection and its setup for nothing.
        self.max_concurrency = 4 if latency_ms else 1
        self.latency_ms = latency_ms
        self.failure_rate = failure_rate
        self.rng = rng or random.Random()

    def charge(self, *, idempotency_key, order_id, amount, currency, payment_method) -> Charge:
        if self.latency_ms:
            time.sleep(self.latency_ms / 1000)
        if self.failure_rate and self.rng.random() < self.failure_rate:
            raise GatewayUnavailable("in-process gateway: injected transient failure (503)")
        decline = DECLINES.get(payment_method)
        fresh = InProcessCharge(
            idempotency_key=idempotency_key,
            payment_id=f"pi_{secrets.token_hex(12)}",
            order_id=order_id,
            amount_minor=to_minor_units(amount),
            currency=currency,
            payment_method=payment_method,
            succeeded=decline is None,
            decline_code=decline[0] if decline else "",
        )
        # One statement for a first request: insert, and if the key exists insert nothing (a
        # retry, or a concurrent request that won) and read what the first request decided.
        existing = (
            fresh if _insert_new(fresh) else InProcessCharge.objects.get(idempotency_key=idempotency_key)
        )
        if not existing.succeeded:
            raise PaymentDeclined(
                existing.decline_code, DECLINES.get(existing.payment_method, ("", "declined"))[1]
            )
        return Charge(payment_id=existing.payment_id)

    def find_charge(self, *, idempotency_key: str) -> Charge | None:
        if self.failure_rate and self.rng.random() < self.failure_rate:
            raise GatewayUnavailable("in-process gateway: injected transient failure (503)")
        found = InProcessCharge.objects.filter(idempotency_key=idempotency_key, succeeded=True).first()
        return Charge(payment_id=found.payment_id) if found else None


# InvalidRequestError codes that mean "this charge will never go through", not "we misconfigured".
REFUSED_CHARGE_CODES = frozenset(
    {"amount_too_small", "amount_too_large", "payment_method_not_available", "payment_method_unactivated"}
)


class StripeGateway:
    """The official Stripe SDK: one PaymentIntent, created and confirmed, per idempotency key."""

    # Network-bound: a few requests in flight per worker, well below Stripe's rate limits.
    max_concurrency = 4
    # Stripe's search is eventually consistent ("usually within a minute"); keep a margin.
    find_charge_lag = datetime.timedelta(minutes=3)

    def __init__(self, *, api_key: str, api_base: str = "", timeout: float = 20) -> None:
        import stripe

        self._stripe = stripe
        self._client = stripe.StripeClient(
            api_key,
            http_client=stripe.RequestsClient(timeout=timeout),
            max_network_retries=0,
            base_addresses={"api": api_base} if api_base else None,
        )

    def charge(self, *, idempotency_key, order_id, amount, currency, payment_method) -> Charge:
        stripe = self._stripe
        try:
            intent = self._client.v1.payment_intents.create(
                params={
                    "amount": to_minor_units(amount),
                    "currency": currency.lower(),
                    "payment_method": payment_method,
                    "payment_method_types": ["card"],
                    "confirm": True,
                    "metadata": {"order_id": order_id, "idempotency_key": idempotency_key},
                },
                options={"idempotency_key": idempotency_key},
            )
        except stripe.CardError as exc:
            error = exc.error
            code = (error.decline_code if error else None) or exc.code or "card_declined"
            raise PaymentDeclined(code, exc.user_message or str(exc)) from exc
        except (stripe.APIConnectionError, stripe.RateLimitError, stripe.APIError) as exc:
            # Includes 409 "a request with this key is in progress": ask again later.
            raise GatewayUnavailable(f"stripe: {type(exc).__name__}: {exc}") from exc
        except stripe.InvalidRequestError as exc:
            if exc.code in REFUSED_CHARGE_CODES or (
                exc.code == "resource_missing" and exc.param == "payment_method"
            ):
                # Stripe will never take this charge as asked: tell the order, like a decline.
                raise PaymentDeclined(exc.code, exc.user_message or str(exc)) from exc
            raise  # our mistake (keys, configuration): a failed attempt, parked in view
        if intent.status != "succeeded":
            # requires_action and the like: a person must act; a decline the shop can explain.
            raise PaymentDeclined(intent.status, f"payment needs {intent.status.replace('_', ' ')}")
        return Charge(payment_id=intent.id)

    def find_charge(self, *, idempotency_key: str) -> Charge | None:
        """Search PaymentIntents by the key we put in their metadata. Stripe's search index may
        lag a write by up to a minute, so callers only ask about payments parked for longer
        (see payment_give_up). localstripe has no search endpoint: there it raises
        GatewayUnavailable, and give-up refuses rather than guess."""
        stripe = self._stripe
        try:
            found = self._client.v1.payment_intents.search(
                params={"query": f"metadata['idempotency_key']:'{idempotency_key}'", "limit": 10}
            )
        except (stripe.APIConnectionError, stripe.RateLimitError, stripe.APIError) as exc:
            raise GatewayUnavailable(f"stripe: {type(exc).__name__}: {exc}") from exc
        except stripe.InvalidRequestError as exc:
            # No search here (localstripe, a restricted key): we cannot tell, so nothing is decided.
            raise GatewayUnavailable(f"stripe: cannot search PaymentIntents: {exc}") from exc
        intents = list(found.data)
        if any(i.status == "succeeded" for i in intents):
            return Charge(payment_id=next(i.id for i in intents if i.status == "succeeded"))
        if any(i.status in ("processing", "requires_capture") for i in intents):
            raise GatewayUnavailable("stripe: a charge under this key is still processing")
        return None


def gateway_from_settings() -> PaymentGateway:
    if conf.gateway == "stripe":
        return StripeGateway(api_key=conf.stripe_api_key, api_base=conf.stripe_api_base)
    return InProcessGateway(latency_ms=conf.inprocess_latency_ms, failure_rate=conf.inprocess_failure_rate)


def payment_gateway() -> PaymentGateway:
    """The gateway payments charges through: the one installed on the app config (PaymentsConfig.
    gateway: another provider's adapter, a test's fake), else the one the settings name."""
    config = apps.get_app_config("payments")
    if isinstance(config, PaymentsConfig) and config.gateway is not None:
        return config.gateway
    return gateway_from_settings()

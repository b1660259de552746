"""The payments app's settings in one place: each name, its default, and the checks run at start.

config/settings.py reads them from the environment (README, Configuration) and refuses an unknown
gateway or Stripe without a key at once; code reads them through `conf` at the time of use.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks

GATEWAYS: tuple[str, ...] = ("inprocess", "stripe")

DEFAULTS: dict[str, str | int | float] = {
    "PAYMENT_GATEWAY": "inprocess",  # or "stripe" (the official SDK)
    "STRIPE_API_KEY": "",  # required with PAYMENT_GATEWAY=stripe
    "STRIPE_API_BASE": "",  # e.g. a local Stripe emulator
    "INPROCESS_GATEWAY_LATENCY_MS": 0,  # added latency per charge (demos, fault tests)
    "INPROCESS_GATEWAY_FAILURE_RATE": 0.0,  # share of requests failing transiently, 0 to 1
}


def _get(name: str) -> Any:
    return getattr(settings, name, DEFAULTS[name])


class PaymentSettings:
    """Typed access to the settings above."""

    @property
    def gateway(self) -> str:
        return str(_get("PAYMENT_GATEWAY"))

    @property
    def stripe_api_key(self) -> str:
        return str(_get("STRIPE_API_KEY"))

    @property
    def stripe_api_base(self) -> str:
        return str(_get("STRIPE_API_BASE"))

    @property
    def inprocess_latency_ms(self) -> int:
        return int(_get("INPROCESS_GATEWAY_LATENCY_MS"))

    @property
    def inprocess_failure_rate(self) -> float:
        return float(_get("INPROCESS_GATEWAY_FAILURE_RATE"))


conf = PaymentSettings()


@checks.register()
def payment_settings_valid(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    errors: list[checks.CheckMessage] = []
    if conf.gateway not in GATEWAYS:
        errors.append(
            checks.Error(
                f"PAYMENT_GATEWAY is {conf.gateway!r}.", hint=f"Use one of {GATEWAYS}.", id="payments.E101"
            )
        )
    if conf.gateway == "stripe" and not conf.stripe_api_key:
        errors.append(checks.Error("PAYMENT_GATEWAY=stripe needs STRIPE_API_KEY.", id="payments.E102"))
    if conf.inprocess_latency_ms < 0:
        errors.append(
            checks.Error(
                f"INPROCESS_GATEWAY_LATENCY_MS is {conf.inprocess_latency_ms}: it cannot be negative.",
                id="payments.E103",
            )
        )
    if not 0 <= conf.inprocess_failure_rate <= 1:
        errors.append(
            checks.Error(
                f"INPROCESS_GATEWAY_FAILURE_RATE is {conf.inprocess_failure_rate:g}: a share, from 0 to 1.",
                id="payments.E104",
            )
        )
    return errors

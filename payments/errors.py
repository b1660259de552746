"""Why payments refuses an operator's request: one exception, with a machine-readable code.

The admin shows the message; callers and tests branch on the code.
"""

from __future__ import annotations

import enum


class Refusal(enum.StrEnum):
    NOT_PARKED = "not_parked"  # only a parked payment can be given up
    HELD = "held"  # a worker holds the item: it may be charging right now
    TOO_RECENT = "too_recent"  # the gateway may not show a charge that recent yet
    DECIDED = "decided"  # its outcome is recorded already
    RETRIED = "retried"  # an operator retried it meanwhile
    ORDER_CANCELLED = "order_cancelled"
    CHANGED = "changed"  # a worker appended meanwhile
    GATEWAY = "gateway"  # the gateway cannot tell whether it charged: try again later


class PaymentRefused(ValueError):
    """The request was refused; nothing was appended. `code` says why, the message in words."""

    def __init__(self, message: str, *, code: Refusal) -> None:
        super().__init__(message)
        self.code = code


class GiveUpRefused(PaymentRefused):
    """Giving up on a parked payment was refused; the message says what to do instead."""

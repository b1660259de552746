"""Why orders refuses a command: one exception, with a machine-readable code and a message for people.

The admin and the management commands show the message; callers and tests branch on the code.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from orders.models import Order


class Refusal(enum.StrEnum):
    INVALID_INPUT = "invalid_input"  # a field is malformed (its message names the field)
    UNCHARGEABLE = "unchargeable"  # a rule on OrderPlaced refused it (e.g. below the smallest charge)
    ALREADY_PLACED = "already_placed"
    NOT_FOUND = "not_found"
    NOT_OPEN = "not_open"  # confirmed or cancelled already (OrderNotOpen.state says which)
    NOT_PAID = "not_paid"
    PAID = "paid"
    PAYMENT_IN_PROGRESS = "payment_in_progress"


class OrderRejected(ValueError):
    """The command was refused; nothing was appended. `code` says why, the message in words."""

    def __init__(self, message: str, *, code: Refusal) -> None:
        super().__init__(message)
        self.code = code


class OrderNotOpen(OrderRejected):
    """The order is no longer open; `state` says what it became."""

    def __init__(self, message: str, *, state: Order.Status) -> None:
        super().__init__(message, code=Refusal.NOT_OPEN)
        self.state = state

"""Why todolists refuses an operator's request: one exception, with a machine-readable code.

The admin and the management commands show the message; callers and tests branch on the code.
"""

from __future__ import annotations

import enum


class Refusal(enum.StrEnum):
    DONE = "done"  # the item is done: nothing to retry or park
    NOT_FOUND = "not_found"  # no such item on the list
    NOT_PARKED = "not_parked"
    HELD = "held"  # a worker holds a live lease on it


class TodoRefused(ValueError):
    """The request was refused; nothing was appended. `code` says why, the message in words."""

    def __init__(self, message: str, *, code: Refusal) -> None:
        super().__init__(message)
        self.code = code

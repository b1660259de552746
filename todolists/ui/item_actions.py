"""The buttons of the item page: what an operator may do to one item, each recorded as an event
with its actor and reason by the owning app's command.

todolists declares retry and park; an app that owns a list adds its own (orders: cancel the order,
payments: give up on the payment) from its admin module, so todolists never imports them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from eventstore.registry import Registry
from todolists.events import TodoItemParked, TodoRetryRequested
from todolists.models import TodoItem
from todolists.operator import todo_item_park, todo_item_retry


@dataclasses.dataclass(frozen=True)
class ItemAction:
    name: str
    label: str
    records: tuple[str, ...]
    """The event types it may record (shown on the button, and the lists they touch are caught up)."""
    permission: str
    run: Callable[..., object]
    """run(item=..., actor=..., reason=...): raises one of `refused` (with the reason) or records."""
    explain: str
    lists: tuple[str, ...] = ()
    """The lists whose items it applies to; empty: every list."""
    refused: tuple[type[Exception], ...] = (ValueError,)
    projections: tuple[str, ...] = ()
    """Read models besides the lists that show its effect, caught up after it."""

    def applies_to(self, item: TodoItem) -> bool:
        return not self.lists or item.list_name in self.lists


item_actions: Registry[ItemAction] = Registry("item action")


def _retry(*, item: TodoItem, actor: str, reason: str) -> None:
    todo_item_retry(item=item, actor=actor, reason=reason)


def _park(*, item: TodoItem, actor: str, reason: str) -> None:
    if item.status != TodoItem.Status.OPEN:
        raise ValueError(
            f"{item.list_name} item {item.key} is {item.status}; only an open item can be parked."
        )
    todo_item_park(item=item, reason=reason, actor=actor)


item_actions.register(
    ItemAction(
        name="retry",
        label="Retry now",
        records=(TodoRetryRequested.event_type,),
        permission="todolists.operate_todoitem",
        run=_retry,
        explain="The item is open and due again: the next worker tries it, with a fresh count of attempts.",
    )
)
item_actions.register(
    ItemAction(
        name="park",
        label="Park",
        records=(TodoItemParked.event_type,),
        permission="todolists.operate_todoitem",
        run=_park,
        explain="No worker tries the item again until someone retries it.",
    )
)

"""Bulk actions on the open items of one list whose last error is of one kind (the dashboard's error
groups, todolists/ui/verdict.py): retry all, park all, and what the list's own app declares (giving up
on parked payments). Each item gets its own event with the actor and the reason, through the same
function as the single-item action, so a replay repeats the effect and a refusal names its item.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from eventstore.registry import Registry
from todolists.models import TodoItem
from todolists.operator import todo_item_park, todo_item_retry
from todolists.ui.verdict import error_kind


@dataclasses.dataclass(frozen=True)
class GroupAction:
    name: str
    label: str
    statuses: tuple[str, ...]
    """The items of the group it applies to."""
    act: Callable[..., object]
    """act(item=..., reason=..., actor=...): records the item's event, or raises ValueError (refused)."""
    permission: str
    list_name: str = ""
    """Only on this list ("" for every list)."""


registry: Registry[GroupAction] = Registry("error group action")


def _park(*, item: TodoItem, reason: str, actor: str) -> None:
    todo_item_park(item=item, reason=reason, actor=actor)


def _retry(*, item: TodoItem, reason: str, actor: str) -> None:
    todo_item_retry(item=item, actor=actor, reason=reason)


registry.register(
    GroupAction(
        name="retry",
        label="Retry all",
        statuses=(TodoItem.Status.PARKED, TodoItem.Status.OPEN),
        act=_retry,
        permission="todolists.operate_todoitem",
    )
)
registry.register(
    GroupAction(
        name="park",
        label="Park all",
        statuses=(TodoItem.Status.OPEN,),
        act=_park,
        permission="todolists.operate_todoitem",
    )
)


def group_actions(*, list_name: str) -> list[GroupAction]:
    return [a for a in registry.all() if a.list_name in ("", list_name)]


@dataclasses.dataclass
class GroupResult:
    recorded: list[TodoItem] = dataclasses.field(default_factory=list)
    refused: list[str] = dataclasses.field(default_factory=list)


def todo_items_of_group(*, list_name: str, kind: str, statuses: tuple[str, ...]) -> list[TodoItem]:
    """The items of the list in these states whose last error is of this kind."""
    items = TodoItem.objects.filter(list_name=list_name, status__in=statuses).exclude(last_error="")
    return [i for i in items.order_by("opened_position") if error_kind(i.last_error) == kind]


def todo_error_group_act(*, list_name: str, kind: str, action: str, reason: str, actor: str) -> GroupResult:
    """Run one group action on every item of the group; refusals are collected, never half-raised."""
    chosen = registry.get(action)
    if chosen.list_name not in ("", list_name):
        raise ValueError(f"{chosen.label} does not apply to {list_name}")
    reason = reason.strip()
    if not reason:
        raise ValueError("a reason is required: it is recorded on each item's event")
    result = GroupResult()
    for item in todo_items_of_group(list_name=list_name, kind=kind, statuses=chosen.statuses):
        try:
            chosen.act(item=item, reason=reason, actor=actor)
        except ValueError as exc:
            result.refused.append(f"{item.key}: {exc}")
        else:
            result.recorded.append(item)
    return result

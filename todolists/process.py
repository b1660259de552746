"""The steps of the process that are not TODO-list automations, declared for the process map.

A command (PlaceOrder, an operator's cancel) records events but works no list, so the TodoList
registry cannot know it. Each app declares its commands here, explicitly, in its ready(); the
map joins them with the lists' automations (`TodoList.records`) and their opening and closing
events. Nothing here is used to run the process: it only describes it.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from eventstore.registry import Registry
from todolists.lists import TodoList
from todolists.lists import registry as todo_lists


@dataclasses.dataclass(frozen=True)
class Step:
    name: str
    kind: Literal["command", "automation"] = "command"
    records: tuple[str, ...] = ()
    """Event type names this step records."""
    actor: str = ""
    """Who runs it (a customer, an operator), shown on the map."""


registry: Registry[Step] = Registry("process step")


@dataclasses.dataclass(frozen=True)
class EventNode:
    type: str
    opens: tuple[str, ...]
    closes: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class StepNode:
    name: str
    kind: str
    actor: str
    works: str
    """The list this automation works ("" for a command)."""
    events: tuple[EventNode, ...]


def _automation(todo: TodoList) -> Step:
    return Step(name=todo.title or todo.name, kind="automation", records=todo.records, actor="automation")


def process_steps() -> list[StepNode]:
    """Every command and automation with the events it records and the lists each event opens
    and closes, from the registries alone: a list declared in code shows up with no other change."""
    lists = todo_lists.all()

    def node(event_type: str) -> EventNode:
        return EventNode(
            type=event_type,
            opens=tuple(t.name for t in lists if event_type in t.opened_by),
            closes=tuple(t.name for t in lists if event_type in t.closed_by),
        )

    steps = [(s, "") for s in registry.all()] + [(_automation(t), t.name) for t in lists]
    # Reading order: what customers start, then the automations, then what operators may do.
    steps.sort(key=lambda sw: (sw[0].actor != "customer", sw[0].kind != "automation", sw[0].name))
    return [
        StepNode(
            name=step.name,
            kind=step.kind,
            actor=step.actor,
            works=works,
            events=tuple(node(e) for e in step.records),
        )
        for step, works in steps
    ]


def unrecorded_event_types() -> list[str]:
    """Opening or closing events of a list that no declared step records: a gap in the map."""
    recorded = {e for s in registry.all() for e in s.records} | {
        e for t in todo_lists.all() for e in t.records
    }
    used = {e for t in todo_lists.all() for e in (*t.opened_by, *t.closed_by)}
    return sorted(used - recorded)

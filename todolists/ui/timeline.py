"""One item's life as a strip along time: opened, each failed attempt, parked, retried, closed.

Read from the same story as "why is this item here" (todolists/ui/why.py, from the log); this only
places each moment on a line for the item page's SVG.
"""

from __future__ import annotations

import dataclasses
import datetime

from django.urls import reverse
from django.utils import timezone

from todolists.models import TodoItem
from todolists.ui.why import ItemWhy

WIDTH, HEIGHT, PAD = 640, 74, 28


@dataclasses.dataclass(frozen=True)
class Mark:
    at: datetime.datetime
    kind: str
    """opened, attempt, parked, retry, closed, now"""
    label: str
    url: str
    x: float = 0
    row: int = 0


@dataclasses.dataclass(frozen=True)
class Timeline:
    marks: list[Mark]
    width: int = WIDTH
    height: int = HEIGHT
    axis_y: int = 26

    @property
    def span(self) -> str:
        first, last = self.marks[0].at, self.marks[-1].at
        return f"{(last - first).total_seconds():.1f} s"


def _event_url(position: int | None) -> str:
    return reverse("admin:eventstore_event_change", args=[position]) if position else ""


def item_timeline(*, item: TodoItem, why: ItemWhy) -> Timeline:
    marks = [Mark(item.opened_at, "opened", f"opened ({item.opened_by})", _event_url(item.opened_position))]
    marks += [
        Mark(a.at, "attempt", f"attempt {a.attempt} failed", _event_url(a.position)) for a in why.attempts
    ]
    marks += [
        Mark(
            a.at,
            "parked" if a.what == "parked" else "retry",
            f"{a.what} by {a.actor}",
            _event_url(a.position),
        )
        for a in why.actions
    ]
    if item.closed_at:
        marks.append(
            Mark(item.closed_at, "closed", f"closed ({item.closed_by})", _event_url(item.closed_position))
        )
    else:
        marks.append(Mark(timezone.now(), "now", f"now: {item.status}", ""))
    marks.sort(key=lambda m: m.at)
    start, end = marks[0].at, marks[-1].at
    total = max((end - start).total_seconds(), 1e-6)
    placed = [
        dataclasses.replace(
            m, x=round(PAD + (m.at - start).total_seconds() / total * (WIDTH - 2 * PAD), 1), row=i % 2
        )
        for i, m in enumerate(marks)
    ]
    return Timeline(marks=placed)

"""Every list as it was at a past point of the log: its open items, their attempts, parked ones.

The lists' own projections are folded over the log up to that position into a temporary shadow
of the items table (the replay's shadow model), inside a transaction that is rolled back: the
live rows are never read or touched, and nothing stays behind. Read order is the log's (on
PostgreSQL, commit order); an event after the position is passed over. It reads the whole log,
so it is meant for a question an operator asks, not for a page that refreshes.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Iterable
from typing import Any

from django.db import models, transaction
from django.utils import timezone

from eventstore.catchup import skipped_positions
from eventstore.models import Event
from eventstore.projections import Batch, Envelope, Projection
from eventstore.projections import registry as projections
from eventstore.record import LogKey
from eventstore.replay import shadow_create, shadow_drop, shadow_model
from eventstore.store import RecordedEvent, log_read
from todolists.lists import registry as todo_lists
from todolists.models import TodoItem

BATCH = 2000


class NoSuchMoment(ValueError):
    pass


@dataclasses.dataclass(frozen=True)
class ListAsOf:
    name: str
    open: int
    parked: int
    items: list[dict[str, Any]]
    """The items not done: key, status, attempts, opened_position."""

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def position_at(moment: str) -> int:
    """A position as given, or the last event recorded at or before an ISO time."""
    if moment.isdigit():
        return int(moment)
    try:
        at = datetime.datetime.fromisoformat(moment)
    except ValueError:
        raise NoSuchMoment(f"{moment!r} is neither a log position nor an ISO time") from None
    if timezone.is_naive(at):
        at = timezone.make_aware(at)
    last = Event.objects.filter(recorded_at__lte=at).order_by("-position").values_list("position", flat=True)
    return last.first() or 0


def _summary(rows: Iterable[dict[str, Any]]) -> list[ListAsOf]:
    by_list: dict[str, list[dict[str, Any]]] = {t.name: [] for t in todo_lists.all()}
    for r in rows:
        by_list.setdefault(r["list_name"], []).append(
            {k: r[k] for k in ("key", "status", "attempts", "opened_position")}
        )
    return [
        ListAsOf(
            name=name,
            open=len(items),
            parked=sum(i["status"] == TodoItem.Status.PARKED for i in items),
            items=sorted(items, key=lambda i: i["key"]),
        )
        for name, items in by_list.items()
    ]


FIELDS = ("list_name", "key", "status", "attempts", "opened_position")


def todo_lists_now() -> list[ListAsOf]:
    """The live lists in the same shape, to compare with a past moment."""
    return _summary(TodoItem.objects.exclude(status=TodoItem.Status.DONE).order_by().values(*FIELDS))


def todo_lists_as_of(*, position: int) -> list[ListAsOf]:
    if position < 0:
        raise NoSuchMoment("a log position is 0 or more")
    lists = [projections.get(t.projection_name) for t in todo_lists.all()]
    # A shadow of every table the lists write (their items and their rollup): none is live.
    shadows = {t.model: shadow_model(t.model, "as-of") for p in lists for t in p.tables}
    shadow = shadows[TodoItem]
    with transaction.atomic():
        for model in shadows.values():
            shadow_create(model)
        try:
            wanted = {p.name: (p, set(p.types), skipped_positions(name=p.name)) for p in lists}
            key = LogKey()
            while read := log_read(after=key, limit=BATCH):
                _apply([r for r in read if r.position <= position], wanted, shadows)
                key = LogKey(read[-1].tx_id, read[-1].position)
            result = _summary(
                shadow._default_manager.exclude(status=TodoItem.Status.DONE).order_by().values(*FIELDS)
            )
        finally:
            for model in shadows.values():
                shadow_drop(model)
            transaction.set_rollback(True)
    return result


def _apply(
    batch: list[RecordedEvent],
    wanted: dict[str, tuple[Projection, set[str], set[int]]],
    shadows: dict[type[models.Model], type[models.Model]],
) -> None:
    for projection, types, skipped in wanted.values():
        envelopes = [
            Envelope(event=r.event, recorded=r)
            for r in batch
            if r.type in types and r.position not in skipped
        ]
        if envelopes:
            projection.apply(Batch(envelopes, shadows))

"""One search box for any id an operator sees cut short on a page: a prefix of at least six
characters of an order id, an item key, a correlation id or a stream, or an event's position.

Orders and payments are found through the log (their events carry the order id as correlation
id and name their streams after it), so this module imports neither app. Three queries, each
bounded by LIMIT.
"""

from __future__ import annotations

import dataclasses

from django.db.models import Q
from django.urls import reverse

from eventstore.models import Event
from todolists.models import TodoItem

MIN_PREFIX = 6
LIMIT = 20


class PrefixTooShort(ValueError):
    pass


@dataclasses.dataclass(frozen=True)
class Hit:
    kind: str
    """business case (order), stream, TODO item, event"""
    label: str
    url: str
    detail: str = ""


def search_prefix(*, q: str) -> list[Hit]:
    from todolists.ui.admin import story_url

    q = q.strip()
    if len(q) < MIN_PREFIX:
        raise PrefixTooShort(f"type at least {MIN_PREFIX} characters of an id (got {len(q)})")
    hits: list[Hit] = []
    if q.isdigit():
        event = Event.objects.filter(position=int(q)).only("position", "type", "stream_id").first()
        if event:
            url = reverse("admin:eventstore_event_change", args=[event.position])
            hits.append(Hit("event", f"#{event.position} {event.type}", url, event.stream_id))
    cases: dict[str, set[str]] = {}
    events = (
        Event.objects.filter(correlation_id__startswith=q)
        .order_by()
        .values_list("correlation_id", "stream_id")
        .distinct()[:LIMIT]
    )
    for correlation_id, stream_id in events:
        cases.setdefault(correlation_id, set()).add(stream_id)
    log_url = reverse("admin:eventstore_event_changelist")
    for correlation_id, streams in sorted(cases.items()):
        hits.append(
            Hit(
                "business case (order)", correlation_id, story_url(correlation_id), ", ".join(sorted(streams))
            )
        )
        hits += [Hit("stream", s, f"{log_url}?q={s}") for s in sorted(streams)]
    items = (
        TodoItem.objects.filter(Q(key__startswith=q) | Q(correlation_id__startswith=q))
        .only("pk", "list_name", "key", "status")
        .order_by("list_name", "key")[:LIMIT]
    )
    hits += [
        Hit(
            "TODO item",
            f"{i.list_name}: {i.key}",
            reverse("admin:todolists_todoitem_change", args=[i.pk]),
            i.status,
        )
        for i in items
    ]
    return hits

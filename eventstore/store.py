"""Append to and read from the event log.

Readers never miss an event (invariant 3). On PostgreSQL a sequence hands out positions when a
row is inserted, not when its transaction commits, so without care a reader could see position
11 committed, move its checkpoint past 10, and never see 10 when it commits later.

Technique: appends are serialized by a transaction-scoped advisory lock
(`pg_advisory_xact_lock`), taken before the insert allocates positions and held until commit
or rollback. A later append cannot even obtain a position until the earlier transaction has
finished, so positions become visible strictly in order and "position > checkpoint" is a safe
read. The cost is one appender at a time across the whole log, which is fine for a business
process log (appends are a few rows and commit right away), and readers never wait. On SQLite the
database itself allows one writer at a time (BEGIN IMMEDIATE), which gives the same guarantee.

Keep appends at the end of a transaction: the lock is held until it commits.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import Max
from django.utils import timezone

from eventstore.events import DomainEvent, event_from_data, event_to_data
from eventstore.models import Event

# Arbitrary, fixed: the advisory lock id that serializes appends to the log.
APPEND_LOCK_ID = 0x6576_656E_746C_6F67  # "eventlog"


class ConcurrencyError(Exception):
    """The stream moved on since the caller read it; nothing was written."""

    def __init__(self, stream_id: str, expected: int, actual: int) -> None:
        super().__init__(
            f"Stream {stream_id!r} is at version {actual}, but version {expected} was expected; "
            "nothing was appended."
        )
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual


@dataclasses.dataclass(frozen=True)
class RecordedEvent:
    position: int
    stream_id: str
    stream_version: int
    type: str
    schema_version: int
    data: dict[str, Any]
    correlation_id: str
    causation_id: str
    actor: str
    recorded_at: datetime.datetime

    @property
    def event(self) -> Any:
        """The typed event (a registered dataclass); raises UnknownEventType if not registered."""
        return event_from_data(
            self.type, self.data, schema_version=self.schema_version, position=self.position
        )

    @classmethod
    def from_row(cls, row: Event) -> RecordedEvent:
        return cls(
            position=row.position,
            stream_id=row.stream_id,
            stream_version=row.stream_version,
            type=row.type,
            schema_version=row.schema_version,
            data=row.data,
            correlation_id=row.correlation_id,
            causation_id=row.causation_id,
            actor=row.actor,
            recorded_at=row.recorded_at,
        )


def _lock_log() -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [APPEND_LOCK_ID])


def stream_version(*, stream_id: str) -> int:
    return Event.objects.filter(stream_id=stream_id).aggregate(v=Max("stream_version"))["v"] or 0


def event_append(
    *,
    stream_id: str,
    events: Sequence[DomainEvent],
    expected_version: int | None,
    correlation_id: str = "",
    causation_id: str = "",
    actor: str = "system",
    guard: Callable[[], None] | None = None,
) -> list[RecordedEvent]:
    """Append `events` to one stream, all or nothing.

    `expected_version` is the stream version the caller decided on (0 for a new stream); if the
    stream has moved, ConcurrencyError is raised and nothing is written. None appends at the end
    whatever the version (for facts that do not depend on the stream's state).

    `guard` runs under the append lock, after the version check: no other append can interleave,
    so it may read other streams and raise to refuse the append (a decision across two streams,
    such as "cancel only if no payment has started").
    """
    if not events:
        return []
    try:
        with transaction.atomic():
            _lock_log()
            current = stream_version(stream_id=stream_id)
            if expected_version is not None and current != expected_version:
                raise ConcurrencyError(stream_id, expected_version, current)
            if guard is not None:
                guard()
            now = timezone.now()
            rows = [
                Event(
                    stream_id=stream_id,
                    stream_version=current + i,
                    type=e.event_type,
                    schema_version=e.schema_version,
                    data=event_to_data(e),
                    correlation_id=correlation_id,
                    causation_id=causation_id,
                    actor=actor,
                    recorded_at=now,
                )
                for i, e in enumerate(events, start=1)
            ]
            Event.objects.bulk_create(rows)
    except IntegrityError:
        # Only reachable if something appended without the lock; the block rolled back as a whole.
        raise ConcurrencyError(stream_id, current, stream_version(stream_id=stream_id)) from None
    return [RecordedEvent.from_row(r) for r in rows]


def stream_read(*, stream_id: str) -> list[RecordedEvent]:
    return [
        RecordedEvent.from_row(r)
        for r in Event.objects.filter(stream_id=stream_id).order_by("stream_version")
    ]


def correlation_read(*, correlation_id: str, types: Sequence[str] | None = None) -> list[RecordedEvent]:
    """Every event of one business case (an order), across streams, in log order."""
    qs = Event.objects.filter(correlation_id=correlation_id)
    if types is not None:
        qs = qs.filter(type__in=types)
    return [RecordedEvent.from_row(r) for r in qs.order_by("position")]


def correlations_read(
    *, correlation_ids: Sequence[str], types: Sequence[str] | None = None
) -> dict[str, list[RecordedEvent]]:
    """Every event of several business cases in one query, grouped by correlation id, in log order."""
    qs = Event.objects.filter(correlation_id__in=list(correlation_ids))
    if types is not None:
        qs = qs.filter(type__in=types)
    grouped: dict[str, list[RecordedEvent]] = {c: [] for c in correlation_ids}
    for row in qs.order_by("position"):
        grouped[row.correlation_id].append(RecordedEvent.from_row(row))
    return grouped


def log_head() -> int:
    return Event.objects.aggregate(p=Max("position"))["p"] or 0


def log_read(
    *, after: int, limit: int = 500, up_to: int | None = None, types: Sequence[str] | None = None
) -> list[RecordedEvent]:
    """Events with position > `after` in position order, at most `limit` of them."""
    qs = Event.objects.filter(position__gt=after)
    if up_to is not None:
        qs = qs.filter(position__lte=up_to)
    if types is not None:
        qs = qs.filter(type__in=types)
    return [RecordedEvent.from_row(r) for r in qs.order_by("position")[:limit]]


def log_iter(*, after: int = 0, batch_size: int = 500) -> Iterator[RecordedEvent]:
    """The whole log after a position, read in batches."""
    while batch := log_read(after=after, limit=batch_size):
        yield from batch
        after = batch[-1].position

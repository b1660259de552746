"""Append to and read from the event log.

Readers never miss an event, and a business case is read in causal order: how each database
keeps those promises is its backend's (eventstore/backends/). The read order is
(tx_id, position); on SQLite that is position order.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import cast

from django.db import IntegrityError, connection, transaction
from django.db.models import Max, QuerySet
from django.utils import timezone

from eventstore.backends import Backend, backend
from eventstore.backends.base import Appended
from eventstore.events import DomainEvent, event_encode
from eventstore.models import Event
from eventstore.record import POSITION_INDEX, TX_ID_INDEX, TYPE_INDEX
from eventstore.record import LogKey as LogKey  # the store's readers' own types, re-exported
from eventstore.record import RecordedEvent as RecordedEvent

# Retries of an append "at the end of the stream" (expected_version=None) that lost a race.
_END_OF_STREAM_RETRIES = 5


class ConcurrencyError(Exception):
    """The stream moved on since the caller read it; nothing was written."""

    def __init__(self, stream_id: str, expected: int, actual: int | None = None) -> None:
        now = f"is at version {actual}" if actual is not None else "has moved on"
        super().__init__(
            f"Stream {stream_id!r} {now}, but version {expected} was expected; nothing was appended."
        )
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual


# --- append hooks ---------------------------------------------------------------------------------

AppendHook = Callable[[Sequence[RecordedEvent]], None]
_APPEND_HOOKS: list[AppendHook] = []


def append_hook_register(hook: AppendHook) -> AppendHook:
    """Run `hook` after every append, with the events it recorded (todolists nudges its workers
    this way, so no command has to remember to)."""
    if hook not in _APPEND_HOOKS:
        _APPEND_HOOKS.append(hook)
    return hook


# --- append ---------------------------------------------------------------------------------------


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

    Each event is checked against its declared type first (InvalidEvent, naming the field).
    `expected_version` is the stream version the caller decided on (0 for a new stream); if the
    stream has moved, ConcurrencyError is raised and nothing is written. None appends at the end
    whatever the version (for facts that do not depend on the stream's state).

    `guard` runs just before the insert, in the same transaction, while this business case
    (`correlation_id`) is locked against other guarded appends; it may read other streams and
    raise to refuse the append (a decision across two streams, such as "cancel only if no
    payment has started").
    """
    if not events:
        return []
    rows = _rows(stream_id, events, correlation_id=correlation_id, causation_id=causation_id, actor=actor)
    db = backend()
    for attempt in range(_END_OF_STREAM_RETRIES):
        try:
            if guard is None and db.appends_in_one_statement and not connection.in_atomic_block:
                recorded = _insert(db, stream_id, rows, expected_version)  # autocommit: 1 round trip
            else:
                with transaction.atomic():
                    if guard is not None:
                        db.lock_correlations([correlation_id])
                        guard()
                    recorded = _insert(db, stream_id, rows, expected_version)
        except IntegrityError:
            if expected_version is None and attempt + 1 < _END_OF_STREAM_RETRIES:
                continue  # another append took the next version meanwhile; go after it
            raise ConcurrencyError(stream_id, expected_version or 0) from None
        _run_hooks(recorded)
        return recorded
    raise AssertionError("unreachable")  # pragma: no cover


def _run_hooks(recorded: Sequence[RecordedEvent]) -> None:
    for hook in _APPEND_HOOKS:
        hook(recorded)


# --- a batch's appends: one event per stream, one transaction --------------------------------------


@dataclasses.dataclass(frozen=True)
class Append:
    """One event for one stream, appended beside others by `events_append`."""

    stream_id: str
    event: DomainEvent
    expected_version: int
    correlation_id: str = ""
    causation_id: str = ""


@dataclasses.dataclass(frozen=True)
class CaseCheck:
    """A decision across streams, made per append of a batch: under the business cases' lock, the
    events of `types` of each append's case are read afresh and given to `refuse`, which returns
    why that append must not be made (an exception, returned in its place) or None."""

    types: Sequence[str]
    refuse: Callable[[Append, Sequence[RecordedEvent]], Exception | None]


AppendResult = RecordedEvent | Exception
"""Per append of `events_append`: the event as recorded, or why it was not written."""


def events_append(
    *, appends: Sequence[Append], actor: str = "system", check: CaseCheck | None = None
) -> list[AppendResult]:
    """Append one event to each of several streams in one transaction (on PostgreSQL, one INSERT).

    Each append stands on its own: one whose stream is not at its expected version gets a
    ConcurrencyError, one that `check` refuses gets the refusal, and neither stops the others.
    Returns, in the order of `appends`, each recorded event or its error. A batch's outcomes
    are written this way: one commit for the batch instead of one per item. An event that does
    not match its type (InvalidEvent) is the caller's bug, not a race: it refuses the whole call
    and nothing is written.

    With `check`, the cases are locked first against every guarded append (`event_append`'s
    `guard` too), so each check and its append are one decision.
    """
    if not appends:
        return []
    _check_batch(appends, checked=check is not None)
    rows = [
        _rows(
            a.stream_id, [a.event], correlation_id=a.correlation_id, causation_id=a.causation_id, actor=actor
        )[0]
        for a in appends
    ]
    db = backend()
    one_statement = check is None and db.appends_in_one_statement and not connection.in_atomic_block
    with contextlib.nullcontext() if one_statement else transaction.atomic():  # autocommit: 1 round trip
        refused = _refusals(db, appends, check) if check is not None else {}
        kept = [i for i in range(len(appends)) if i not in refused]
        written = (
            db.insert_each([rows[i] for i in kept], [appends[i].expected_version for i in kept])
            if kept
            else []
        )
    results: list[AppendResult | None] = [refused.get(i) for i in range(len(appends))]
    for i, inserted in zip(kept, written, strict=True):
        if inserted is not None:
            position, version, tx_id = inserted
            results[i] = RecordedEvent(position=position, stream_version=version, tx_id=tx_id, **rows[i])
    moved = [i for i, r in enumerate(results) if r is None]
    for i, error in zip(moved, _moved([appends[i] for i in moved]), strict=True):
        results[i] = error
    recorded = [r for r in results if isinstance(r, RecordedEvent)]
    if recorded:
        _run_hooks(recorded)
    return cast(list[AppendResult], results)  # every item is decided by now


def _check_batch(appends: Sequence[Append], *, checked: bool) -> None:
    if len({a.stream_id for a in appends}) != len(appends):
        raise ValueError("events_append takes one append per stream")
    if checked and not all(a.correlation_id for a in appends):
        raise ValueError("a checked append needs its business case (correlation_id)")
    if checked and len({a.correlation_id for a in appends}) != len(appends):
        # Each is checked against the facts read before any of them is written.
        raise ValueError("a checked batch takes one append per business case")


def _refusals(db: Backend, appends: Sequence[Append], check: CaseCheck) -> dict[int, Exception]:
    cases = sorted({a.correlation_id for a in appends})
    db.lock_correlations(cases)
    facts = correlations_read(correlation_ids=cases, types=check.types)
    refusals = {i: check.refuse(a, facts[a.correlation_id]) for i, a in enumerate(appends)}
    return {i: r for i, r in refusals.items() if r is not None}


def _moved(appends: Sequence[Append]) -> list[ConcurrencyError]:
    """The ConcurrencyError of each append whose stream moved, naming its version (one query)."""
    if not appends:
        return []
    versions: Mapping[str, int] = dict(
        Event.objects.filter(stream_id__in=[a.stream_id for a in appends])
        .order_by()
        .values("stream_id")
        .annotate(v=Max("stream_version"))
        .values_list("stream_id", "v")
    )
    return [ConcurrencyError(a.stream_id, a.expected_version, versions.get(a.stream_id, 0)) for a in appends]


def _rows(
    stream_id: str, events: Sequence[DomainEvent], *, correlation_id: str, causation_id: str, actor: str
) -> list[Appended]:
    """The columns of each event that the appender decides, each event checked against its type;
    the database gives the position, version and tx_id."""
    recorded_at = timezone.now()
    return [
        {
            "stream_id": stream_id,
            "type": e.event_type,
            "schema_version": e.schema_version,
            "data": event_encode(e),
            "correlation_id": correlation_id,
            "causation_id": causation_id,
            "actor": actor,
            "recorded_at": recorded_at,
        }
        for e in events
    ]


def _insert(
    db: Backend, stream_id: str, rows: list[Appended], expected_version: int | None
) -> list[RecordedEvent]:
    inserted = db.insert(stream_id, rows, expected_version)
    if not inserted:
        raise ConcurrencyError(stream_id, expected_version or 0, stream_version(stream_id=stream_id))
    return [
        RecordedEvent(position=position, stream_version=version, tx_id=tx_id, **row)
        for (position, version, tx_id), row in zip(inserted, rows, strict=True)
    ]


# --- read -----------------------------------------------------------------------------------------


def stream_read(*, stream_id: str) -> list[RecordedEvent]:
    return [
        RecordedEvent.from_row(r)
        for r in Event.objects.filter(stream_id=stream_id).order_by("stream_version")
    ]


def correlation_read(*, correlation_id: str, types: Sequence[str] | None = None) -> list[RecordedEvent]:
    """Every event of one business case (an order), across streams, in log order."""
    return [
        RecordedEvent.from_row(r)
        for r in _in_log_order(Event.objects.filter(correlation_id=correlation_id), types)
    ]


def correlations_read(
    *, correlation_ids: Sequence[str], types: Sequence[str] | None = None
) -> dict[str, list[RecordedEvent]]:
    """Every event of several business cases in one query, grouped by correlation id, in log order."""
    grouped: dict[str, list[RecordedEvent]] = {c: [] for c in correlation_ids}
    for row in _in_log_order(Event.objects.filter(correlation_id__in=list(correlation_ids)), types):
        grouped[row.correlation_id].append(RecordedEvent.from_row(row))
    return grouped


def _in_log_order(qs: QuerySet[Event], types: Sequence[str] | None) -> QuerySet[Event]:
    return (qs if types is None else qs.filter(type__in=types)).order_by("tx_id", "position")


def log_head() -> int:
    """The highest position in the log (committed or not yet visible to readers)."""
    return Event.objects.aggregate(p=Max("position"))["p"] or 0


def log_visible_below() -> int | None:
    """The read bound: readers see every event whose tx_id is below it. None where nothing holds
    readers back (SQLite)."""
    return backend().visible_below()


def log_read(
    *, after: LogKey | int = 0, limit: int = 500, types: Sequence[str] | None = None
) -> list[RecordedEvent]:
    """Committed events after `after` in read order, at most `limit`, optionally of some types only.

    Read order is (tx_id, position): on SQLite that is position order. An int `after` is the
    position of an event, read from there in read order.
    """
    key = after if isinstance(after, LogKey) else _key_of(after)
    if types is not None and not types:
        return []
    db = backend()
    return db.recorded(db.select(key, limit, types, filter_types=True))


def _key_of(position: int) -> LogKey:
    """The read-order key of the event at `position` (0: the start of the log)."""
    if position <= 0:
        return LogKey()
    row = Event.objects.filter(position=position).values_list("tx_id", flat=True).first()
    if row is None:
        raise ValueError(f"there is no event at position {position}")
    return LogKey(row, position)


def log_scan(
    *, after: LogKey, limit: int, types: Sequence[str]
) -> tuple[list[RecordedEvent], LogKey | None, int]:
    """The next `limit` committed events after `after`, in one statement (so one snapshot): those
    of `types`, the key of the last event scanned (so a projector moves past the others too), and
    how many were scanned."""
    db = backend()
    rows = db.select(after, limit, types, filter_types=False)
    if not rows:
        return [], None, 0
    wanted = set(types)
    last = rows[-1]
    return (
        db.recorded([r for r in rows if r[TYPE_INDEX] in wanted]),
        LogKey(last[TX_ID_INDEX], last[POSITION_INDEX]),
        len(rows),
    )


def log_held_back() -> tuple[float, int] | None:
    """(age in seconds, backend pid) of the oldest running write transaction that holds readers
    back, or None (nothing does)."""
    return backend().held_back()

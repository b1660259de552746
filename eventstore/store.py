"""Append to and read from the event log.

Readers never miss an event. On PostgreSQL a sequence hands out positions when a
row is inserted, not when its transaction commits, so a reader that trusted "position >
checkpoint" could see position 11 committed, move past 10, and never see 10 when it commits.

Technique (as in Emmett's PostgreSQL store): each event stores the id of the transaction that
appended it (`tx_id`), and readers order the log by (tx_id, position) and take only events whose
transaction id lies below the oldest transaction of this database still running. Every transaction
below that bound has finished, and any transaction still to commit has a larger id, so nothing can
ever appear behind a reader's checkpoint. Appends take no global lock: concurrent writers never
queue behind each other. The price: a long write transaction in this database (a migration, a batch
job, a replay's batch) holds every reader back until it ends (`projection_status` names it, with its
age); a transaction in another database on the same server never does, as it cannot write our log.

An event's tx_id is also at least its stream predecessor's and every earlier event of its business
case's (correlation id), so a stream is read in version order and a business case in causal order,
even if a transaction that started earlier appends after a later one committed.

An append is one INSERT (the expected version is checked by the INSERT itself and the stream's
unique constraint), plus the commit. On SQLite the database allows one writer at a time (BEGIN
IMMEDIATE), so positions commit in order and tx_id is 0.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import msgspec
import psycopg
from django.db import IntegrityError, connection, transaction
from django.db.models import Max
from django.utils import timezone

from eventstore.events import DomainEvent, event_decode, event_encode
from eventstore.models import Event

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


@dataclasses.dataclass(frozen=True, slots=True)
class RecordedEvent:
    """One event as stored: its place in the log, its metadata, and its data."""

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
    tx_id: int = 0

    @property
    def event(self) -> DomainEvent:
        """The typed, upcast event; raises UnknownEventType or InvalidEvent if it cannot be read."""
        return event_decode(self.type, self.data, schema_version=self.schema_version, position=self.position)

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
            tx_id=row.tx_id,
        )


# --- append hooks ---------------------------------------------------------------------------------

AppendHook = Callable[[Sequence[RecordedEvent]], None]
_APPEND_HOOKS: list[AppendHook] = []


def append_hook_register(hook: AppendHook) -> AppendHook:
    """Run `hook` after every append, inside the appending transaction (todolists nudges its
    workers this way, so no command has to remember to)."""
    if hook not in _APPEND_HOOKS:
        _APPEND_HOOKS.append(hook)
    return hook


# --- append ---------------------------------------------------------------------------------------


def stream_version(*, stream_id: str) -> int:
    return Event.objects.filter(stream_id=stream_id).aggregate(v=Max("stream_version"))["v"] or 0


def _lock_correlation(correlation_id: str) -> None:
    # Guarded appends of one business case take turns, so a guard's check cannot be overtaken.
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [f"corr:{correlation_id}"])


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
    payloads = [(e.event_type, e.schema_version, event_encode(e)) for e in events]
    meta = (correlation_id, causation_id, actor, timezone.now())
    for attempt in range(_END_OF_STREAM_RETRIES):
        try:
            if guard is None and connection.vendor == "postgresql" and not connection.in_atomic_block:
                recorded = _insert(stream_id, payloads, expected_version, meta)  # autocommit: 1 round trip
            else:
                with transaction.atomic():
                    if guard is not None:
                        if connection.vendor == "postgresql":
                            _lock_correlation(correlation_id)
                        guard()
                    recorded = _insert(stream_id, payloads, expected_version, meta)
        except IntegrityError:
            if expected_version is None and attempt + 1 < _END_OF_STREAM_RETRIES:
                continue  # another append took the next version meanwhile; go after it
            raise ConcurrencyError(stream_id, expected_version or 0) from None
        for hook in _APPEND_HOOKS:
            hook(recorded)
        return recorded
    raise AssertionError("unreachable")  # pragma: no cover


_COLUMNS = (
    "stream_id, stream_version, type, schema_version, data, correlation_id, causation_id, actor, recorded_at"
)


def _insert(
    stream_id: str,
    payloads: list[tuple[str, int, dict]],
    expected_version: int | None,
    meta: tuple[str, str, str, datetime.datetime],
) -> list[RecordedEvent]:
    if connection.vendor == "postgresql":
        rows = _insert_postgresql(stream_id, payloads, expected_version, meta)
    else:
        rows = _insert_orm(stream_id, payloads, expected_version, meta)
    if not rows:
        raise ConcurrencyError(stream_id, expected_version or 0, stream_version(stream_id=stream_id))
    return [
        RecordedEvent(position=position, stream_version=version, tx_id=tx_id, **fields)
        for (position, version, tx_id), fields in zip(rows, _columns(stream_id, payloads, meta), strict=True)
    ]


def _columns(stream_id: str, payloads: list[tuple[str, int, dict]], meta: tuple) -> list[dict[str, Any]]:
    """The columns of each event to append that the caller decides (not position or version)."""
    correlation_id, causation_id, actor, recorded_at = meta
    return [
        {
            "stream_id": stream_id,
            "type": type_name,
            "schema_version": schema_version,
            "data": data,
            "correlation_id": correlation_id,
            "causation_id": causation_id,
            "actor": actor,
            "recorded_at": recorded_at,
        }
        for type_name, schema_version, data in payloads
    ]


def _insert_postgresql(stream_id, payloads, expected_version, meta) -> list[tuple[int, int, int]]:
    """One statement: read the stream's head, check it, insert at head + 1..n, return positions.

    The WHERE refuses a stream that is behind the expectation; one that is ahead makes the insert
    hit the (stream_id, stream_version) constraint. Either way nothing is written.
    """
    correlation_id, causation_id, actor, recorded_at = meta
    values = ", ".join(["(%s, %s, %s, %s::jsonb)"] * len(payloads))
    params: list[Any] = [stream_id, correlation_id, causation_id, actor, recorded_at, correlation_id]
    for n, (type_name, schema_version, data) in enumerate(payloads, start=1):
        params += [n, type_name, schema_version, json.dumps(data)]
    params.append(stream_id)
    check = "TRUE"
    if expected_version is not None:
        check = "COALESCE(head.version, 0) = %s"
        params.append(expected_version)
    sql = f"""
        INSERT INTO eventstore_event ({_COLUMNS}, tx_id)
        SELECT %s, COALESCE(head.version, 0) + v.n, v.type, v.schema_version, v.data,
               %s, %s, %s, %s,
               GREATEST(pg_current_xact_id()::text::bigint, COALESCE(head.tx_id, 0), COALESCE(
                   (SELECT max(tx_id) FROM eventstore_event WHERE correlation_id = NULLIF(%s, '')), 0))
        FROM (VALUES {values}) AS v(n, type, schema_version, data)
        LEFT JOIN (
            SELECT stream_version AS version, tx_id FROM eventstore_event
            WHERE stream_id = %s ORDER BY stream_version DESC LIMIT 1
        ) AS head ON TRUE
        WHERE {check}
        ORDER BY v.n
        RETURNING position, stream_version, tx_id
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return sorted(cursor.fetchall(), key=lambda r: r[1])


def _insert_orm(stream_id, payloads, expected_version, meta) -> list[tuple[int, int, int]]:
    current = stream_version(stream_id=stream_id)
    if expected_version is not None and current != expected_version:
        raise ConcurrencyError(stream_id, expected_version, current)
    rows = Event.objects.bulk_create(
        [
            Event(stream_version=current + i, **fields)
            for i, fields in enumerate(_columns(stream_id, payloads, meta), start=1)
        ]
    )
    return [(r.position, r.stream_version, 0) for r in rows]


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


def _in_log_order(qs, types: Sequence[str] | None):
    return (qs if types is None else qs.filter(type__in=types)).order_by("tx_id", "position")


def log_head() -> int:
    """The highest position in the log (committed or not yet visible to readers)."""
    return Event.objects.aggregate(p=Max("position"))["p"] or 0


# The transaction-id bound below which every transaction that could append to this log has finished,
# for this reader: the lowest transaction id still running in THIS database, or the snapshot's xmax
# when none runs. A transaction of another database cannot write our tables, so it never holds our
# readers back; only one positively seen in pg_stat_activity as another database's is left out, so a
# transaction that ends between the snapshot and that look (or one this role may not see) still counts.
# (backend_xid is a 32-bit xid, the snapshot's are 64-bit: running ids are unique modulo 2^32.)
# A reader's own uncommitted events count only when no older transaction of ours is still running:
# then reading them is safe (its checkpoint commits or rolls back with them) and a test in one
# transaction sees them.
_ELSEWHERE = """
    -- the clear: a transaction caches pg_stat_activity at its first look, and ids met later
    -- would all count as ours
    SELECT pid, backend_xid FROM pg_stat_get_activity(
        CASE WHEN pg_stat_clear_snapshot()::text IS NULL THEN 0 END
    ) WHERE datid IS DISTINCT FROM (SELECT oid FROM pg_database WHERE datname = current_database())
"""
_VISIBLE_BELOW = f"""(
    SELECT CASE
        WHEN own IS NULL OR lowest < own THEN COALESCE(lowest, xmax)
        -- Every id in [xmax, own) is still running (the snapshot lists only those below xmax),
        -- subtransactions' included: each holds the lock on its own id until its top level ends.
        WHEN NOT EXISTS (
            SELECT 1 FROM generate_series(xmax, own - 1) AS x WHERE mod(x, 4294967296) NOT IN (
                SELECT l.transactionid::text::bigint FROM pg_locks AS l JOIN ({_ELSEWHERE}) AS e USING (pid)
                WHERE l.locktype = 'transactionid' AND l.granted AND l.transactionid IS NOT NULL
            )
        ) THEN own + 1
        ELSE COALESCE(lowest, xmax)
    END
    FROM (
        SELECT own::text::bigint AS own, pg_snapshot_xmax(snap)::text::bigint AS xmax,
            (SELECT min(x::text::bigint) FROM pg_snapshot_xip(snap) AS x
             WHERE mod(x::text::bigint, 4294967296) NOT IN (
                 SELECT backend_xid::text::bigint FROM ({_ELSEWHERE}) AS e WHERE backend_xid IS NOT NULL
             )) AS lowest
        FROM (SELECT pg_current_snapshot() AS snap, pg_current_xact_id_if_assigned() AS own) AS s
    ) AS b
)"""


@dataclasses.dataclass(frozen=True, slots=True)
class LogKey:
    """A place in the read order of the log: (transaction id, position)."""

    tx_id: int = 0
    position: int = 0


_SELECT = (
    "SELECT position, stream_id, stream_version, type, schema_version, {data}, correlation_id, "
    "causation_id, actor, recorded_at, tx_id FROM eventstore_event WHERE (tx_id, position) > (%s, %s)"
)


def _select(after: LogKey, limit: int, types: Sequence[str] | None, *, filter_types: bool) -> list[tuple]:
    in_types = f"type IN ({', '.join(['%s'] * len(types))})" if types else "FALSE"
    params: list[Any] = []
    postgresql = connection.vendor == "postgresql"
    data = "data::text" if postgresql else "data"  # decoded by msgspec, faster than the driver
    if types is not None and not filter_types:
        # Every event is scanned (so the caller learns how far the log goes), data only for its types.
        sql = [_SELECT.format(data=f"CASE WHEN {in_types} THEN {data} END")]
        params += list(types or ())
    else:
        sql = [_SELECT.format(data=data)]
    params += [after.tx_id, after.position]
    if types is not None and filter_types:
        sql.append(f"AND {in_types}")
        params += list(types)
    if postgresql:
        sql.append(f"AND tx_id < {_VISIBLE_BELOW}")
    sql.append("ORDER BY tx_id, position LIMIT %s")
    params.append(limit)
    if postgresql:
        return execute_binary(" ".join(sql), params, fetch=True)
    with connection.cursor() as cursor:
        cursor.execute(" ".join(sql), params)
        return cursor.fetchall()


def execute_binary(sql: str, params: Sequence[Any], *, fetch: bool = False) -> list[tuple]:
    """Run one statement on PostgreSQL with server-side binding and binary results: Django's
    cursors quote every value into the query text and parse every timestamp in Python, which
    for a batch of a thousand rows costs more than the database's work. `%b` placeholders send
    binary parameters. Logged like Django's own queries, so query counts stay honest."""
    connection.ensure_connection()
    started = time.monotonic()
    with psycopg.Cursor(connection.connection) as raw:
        raw.execute(sql, params, binary=fetch)
        rows = raw.fetchall() if fetch else []
    if connection.queries_logged:
        connection.queries_log.append({"sql": sql, "time": f"{time.monotonic() - started:.3f}"})
    return rows


def _recorded(rows: list[tuple]) -> list[RecordedEvent]:
    sqlite = connection.vendor == "sqlite"
    convert_dt = connection.ops.convert_datetimefield_value if sqlite else None
    return [
        RecordedEvent(
            position=r[0],
            stream_id=r[1],
            stream_version=r[2],
            type=r[3],
            schema_version=r[4],
            data=msgspec.json.decode(r[5]) if isinstance(r[5], str | bytes) else r[5],
            correlation_id=r[6],
            causation_id=r[7],
            actor=r[8],
            recorded_at=convert_dt(r[9], None, connection) if convert_dt else r[9],
            tx_id=r[10],
        )
        for r in rows
    ]


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
    return _recorded(_select(key, limit, types, filter_types=True))


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
    rows = _select(after, limit, types, filter_types=False)
    if not rows:
        return [], None, 0
    wanted = set(types)
    return _recorded([r for r in rows if r[3] in wanted]), LogKey(rows[-1][10], rows[-1][0]), len(rows)


def log_iter(*, after: int = 0, batch_size: int = 500) -> Iterator[RecordedEvent]:
    """The whole committed log after a position, read in batches."""
    key = _key_of(after)
    while batch := log_read(after=key, limit=batch_size):
        yield from batch
        key = LogKey(batch[-1].tx_id, batch[-1].position)


def log_held_back() -> tuple[float, int] | None:
    """(age in seconds, backend pid) of the oldest running write transaction that holds readers
    back, or None (PostgreSQL only; on SQLite nothing holds readers back)."""
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT EXTRACT(EPOCH FROM clock_timestamp() - xact_start), pid FROM pg_stat_activity
            WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid()
              AND datname = current_database()  -- others' transactions never hold our readers
              AND xact_start IS NOT NULL  -- hidden from a role without pg_read_all_stats
            ORDER BY age(backend_xid) DESC LIMIT 1
            """
        )
        row = cursor.fetchone()
    return (float(row[0]), int(row[1])) if row else None

"""The event store on PostgreSQL.

Readers never miss an event. A sequence hands out positions when a row is inserted, not when its
transaction commits, so a reader that trusted "position > checkpoint" could see position 11
committed, move past 10, and never see 10 when it commits.

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

An append is one INSERT: the expected version is checked by the INSERT itself and the stream's
unique constraint.
"""

from __future__ import annotations

import contextlib
import enum
import json
import re
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import msgspec
import psycopg
from django.db import connection
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field, JSONField, Model
from psycopg.types.json import Jsonb

from eventstore.backends.base import Appended, column, select_sql
from eventstore.record import DATA_INDEX, POSITION_INDEX, LogKey, RecordedEvent

_VARCHAR_N = re.compile(r"^varchar\(\d+\)$")
# How a column's value travels in an INSERT's VALUES list, where it differs: the data as JSON text.
_AS_TEXT: dict[str, tuple[Callable[[Any], Any], str]] = {"data": (json.dumps, "::jsonb")}
_PLAIN: tuple[Callable[[Any], Any], str] = (lambda v: v, "")
# A read whose bound was set by a transaction that ended during its statement (one of another
# database, most often: a busy neighbour ends several a second) came back short for nothing; it
# reads again, with a fresh snapshot, at most this many times in all. Without it a catch-up in a
# transaction that appended misses its own events, and a nudge task may find nothing to work.
READ_TRIES = 3
READ_AGAIN = "/* again: the bound's transaction ended during the read */"
"""How a second look starts: counts of queries per order leave out the server's noise."""
# In the read's statement: the bound is an id that ran at the snapshot (below its xmax, or below
# our own id; not our own + 1, not the xmax of a snapshot with nothing running), and has ended.
_BOUND_ENDED = """CASE WHEN b.below < GREATEST(pg_snapshot_xmax(b.snap)::text::bigint, COALESCE(b.own, 0))
                       THEN pg_xact_status(b.below::text::xid8) <> 'in progress' ELSE FALSE END"""


def _enum_value(value: Any) -> Any:
    return value.value if isinstance(value, enum.Enum) else value


class PostgreSQLBackend:
    name = "postgresql"
    appends_in_one_statement = True
    concurrent_writers = True
    has_roles = True
    distinct_from = "IS DISTINCT FROM"

    # The read bound: the lowest transaction id of THIS database still running, or the snapshot's
    # xmax when none runs; every transaction below it has finished. A transaction of another
    # database cannot write our tables, so it never holds our readers back: its ids are known by
    # the locks each transaction (and subtransaction) holds on its own id. An id that cannot be
    # placed (its transaction ended since the snapshot, or this role may not see its session)
    # counts as ours: safe; when the id that sets a read's bound has ended by then, the read looks
    # again at once (READ_TRIES, in `select`). A late id (at or above the snapshot's xmax) that is
    # no live transaction's own id and has not committed is left out: a released savepoint (Django's
    # atomic blocks, every test of a suite) drops its lock but stays "in progress" until its
    # top-level transaction ends, which counts (or not) on its own. A reader's own uncommitted
    # events count only when no older transaction of ours still runs (its checkpoint commits or
    # rolls back with them, and a test in one transaction sees them).
    # (Locks name 32-bit xids, snapshots 64-bit ones: running ids are unique modulo 2^32.)
    @staticmethod
    def bound_sql(*, settled: bool) -> str:
        """The bound as one SELECT. `settled`: for a look of its own, before the read's statement,
        an id whose transaction has ended since the snapshot no longer counts (the read's later
        snapshot sees its events); inside the read's statement it must count."""
        still_running = "AND pg_xact_status(ids.x::text::xid8) = 'in progress'" if settled else ""
        return f"""
        WITH s AS (
            SELECT pg_current_snapshot() AS snap, pg_current_xact_id_if_assigned()::text::bigint AS own
        ), activity AS MATERIALIZED (
            -- the clear: a transaction caches pg_stat_activity at its first look
            SELECT pid, datid, backend_xid FROM pg_stat_get_activity(
                CASE WHEN pg_stat_clear_snapshot()::text IS NULL THEN 0 END
            )
        ), elsewhere AS (
            SELECT l.transactionid::text::bigint AS xid
            FROM pg_locks AS l JOIN activity AS a USING (pid)
            WHERE l.locktype = 'transactionid' AND l.mode = 'ExclusiveLock' AND l.granted
              AND a.datid IS DISTINCT FROM (SELECT oid FROM pg_database WHERE datname = current_database())
        ), tops AS (
            -- every live transaction's own (top-level) id, whatever its database
            SELECT backend_xid::text::bigint AS xid FROM activity WHERE backend_xid IS NOT NULL
        ), running AS (
            -- the snapshot lists the ids below its xmax; every id in [xmax, own) ran at the snapshot too
            SELECT ids.x FROM s, LATERAL (
                SELECT x::text::bigint AS x, false AS late FROM pg_snapshot_xip(s.snap) AS x
                UNION ALL
                SELECT generate_series(pg_snapshot_xmax(s.snap)::text::bigint, COALESCE(s.own, 0) - 1), true
            ) AS ids
            WHERE mod(ids.x, 4294967296) NOT IN (SELECT xid FROM elsewhere) {still_running}
              -- a late id that is no live transaction's own and has not committed is a savepoint's
              -- (its transaction counts by its own id) or rolled back: neither can add to the log
              AND NOT (ids.late AND mod(ids.x, 4294967296) NOT IN (SELECT xid FROM tops)
                       AND pg_xact_status(ids.x::text::xid8) IS DISTINCT FROM 'committed')
        )
        SELECT CASE
            WHEN own IS NOT NULL AND NOT EXISTS (SELECT 1 FROM running WHERE x < own) THEN own + 1
            ELSE COALESCE((SELECT min(x) FROM running), pg_snapshot_xmax(snap)::text::bigint)
        END FROM s
        """

    def visible_below(self) -> int | None:
        with connection.cursor() as cursor:
            cursor.execute(self.bound_sql(settled=True))
            row = cursor.fetchone()
        return int(row[0])

    @staticmethod
    def serves(connection: BaseDatabaseWrapper) -> bool:
        return connection.vendor == "postgresql"

    # --- the log ---

    def insert(
        self, stream_id: str, rows: Sequence[Appended], expected_version: int | None
    ) -> list[tuple[int, int, int]]:
        """One statement: read the stream's head, check it, insert at head + 1..n.

        The WHERE refuses a stream that is behind the expectation; one that is ahead makes the
        insert hit the (stream_id, stream_version) constraint. Either way nothing is written.
        """
        appended = list(rows[0])
        travel = [_AS_TEXT.get(c, _PLAIN) for c in appended]
        row_sql = "(%s, " + ", ".join(f"%s{cast}" for _, cast in travel) + ")"
        params: list[Any] = [rows[0]["correlation_id"]]
        for n, row in enumerate(rows, start=1):
            params += [n, *(adapt(row[c]) for c, (adapt, _) in zip(appended, travel, strict=True))]
        params.append(stream_id)
        check = "TRUE"
        if expected_version is not None:
            check = "COALESCE(head.version, 0) = %s"
            params.append(expected_version)
        columns = ", ".join(appended)
        sql = f"""
            INSERT INTO eventstore_event ({columns}, stream_version, tx_id)
            SELECT {", ".join(f"v.{c}" for c in appended)}, COALESCE(head.version, 0) + v.n,
                   GREATEST(pg_current_xact_id()::text::bigint, COALESCE(head.tx_id, 0), COALESCE(
                       (SELECT max(tx_id) FROM eventstore_event WHERE correlation_id = NULLIF(%s, '')), 0))
            FROM (VALUES {", ".join([row_sql] * len(rows))}) AS v(n, {columns})
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

    def insert_each(
        self, rows: Sequence[Appended], expected: Sequence[int]
    ) -> list[tuple[int, int, int] | None]:
        """One statement for the batch. A row whose stream is not at its expected version is
        left out by the WHERE; one whose version another transaction takes meanwhile, by ON
        CONFLICT. Either way the other rows are written."""
        appended = list(rows[0])
        travel = [_AS_TEXT.get(c, _PLAIN) for c in appended]
        row_sql = "(%s, %s, " + ", ".join(f"%s{cast}" for _, cast in travel) + ")"
        params: list[Any] = []
        for n, (row, version) in enumerate(zip(rows, expected, strict=True)):
            params += [n, version, *(adapt(row[c]) for c, (adapt, _) in zip(appended, travel, strict=True))]
        columns = ", ".join(appended)
        sql = f"""
            INSERT INTO eventstore_event ({columns}, stream_version, tx_id)
            SELECT {", ".join(f"v.{c}" for c in appended)}, COALESCE(head.version, 0) + 1,
                   GREATEST(pg_current_xact_id()::text::bigint, COALESCE(head.tx_id, 0), COALESCE(
                       (SELECT max(tx_id) FROM eventstore_event WHERE correlation_id = NULLIF(v.correlation_id, '')), 0))
            FROM (VALUES {", ".join([row_sql] * len(rows))}) AS v(n, expected, {columns})
            LEFT JOIN LATERAL (
                SELECT stream_version AS version, tx_id FROM eventstore_event
                WHERE stream_id = v.stream_id ORDER BY stream_version DESC LIMIT 1
            ) AS head ON TRUE
            WHERE COALESCE(head.version, 0) = v.expected
            ORDER BY v.n
            ON CONFLICT (stream_id, stream_version) DO NOTHING
            RETURNING position, stream_id, stream_version, tx_id
        """
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            written = {stream: (position, version, tx) for position, stream, version, tx in cursor.fetchall()}
        return [written.get(row["stream_id"]) for row in rows]

    def lock_correlations(self, correlation_ids: Sequence[str]) -> None:
        # One statement; unnest keeps the array's (sorted) order.
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(pg_advisory_xact_lock(hashtextextended('corr:' || c, 0))) FROM unnest(%s::text[]) AS c",
                [sorted(set(correlation_ids))],
            )

    def select(
        self, after: LogKey, limit: int, types: Sequence[str] | None, *, filter_types: bool
    ) -> list[tuple[Any, ...]]:
        # Data travels as text, decoded by msgspec: faster than the driver's JSON.
        sql, params = select_sql(after, types, filter_types=filter_types, data="data::text")
        # The bound in the read's own statement (one round trip), so with its snapshot; one row
        # even when no event is below it, to say whether the bound's transaction has ended.
        read = f"""
            WITH b AS MATERIALIZED (
                SELECT ({self.bound_sql(settled=False)}) AS below, pg_current_snapshot() AS snap,
                       pg_current_xact_id_if_assigned()::text::bigint AS own
            )
            SELECT r.*, {_BOUND_ENDED} FROM b LEFT JOIN LATERAL (
                {sql} AND tx_id < b.below ORDER BY tx_id, position LIMIT %s
            ) AS r ON TRUE
        """
        for again in range(READ_TRIES):
            rows = execute_binary(f"{READ_AGAIN}{read}" if again else read, [*params, limit], fetch=True)
            events = [row[:-1] for row in rows if row[POSITION_INDEX] is not None]
            if len(events) == limit or not rows[0][-1]:
                break
        return events

    def recorded(self, rows: Sequence[tuple[Any, ...]]) -> list[RecordedEvent]:
        decode = msgspec.json.decode
        events = []
        for r in rows:
            values = list(r)
            values[DATA_INDEX] = decode(values[DATA_INDEX])
            events.append(RecordedEvent(*values))
        return events

    def held_back(self) -> tuple[float, int] | None:
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

    def distinct_types(self) -> set[str]:
        # A loose index scan over (type, position): one probe per distinct type, not a full scan.
        with connection.cursor() as cursor:
            cursor.execute(
                """
                WITH RECURSIVE t(type) AS (
                    (SELECT type FROM eventstore_event ORDER BY type LIMIT 1)
                    UNION ALL
                    SELECT (SELECT e.type FROM eventstore_event e WHERE e.type > t.type ORDER BY e.type LIMIT 1)
                    FROM t WHERE t.type IS NOT NULL
                ) SELECT type FROM t WHERE type IS NOT NULL
                """
            )
            return {r[0] for r in cursor.fetchall()}

    # --- read models ---

    def upsert(
        self, model: type[Model], fields: Sequence[Field[Any, Any]], values: Sequence[list[Any]],
        *, unique: Sequence[str], updated: Sequence[str],
    ) -> None:  # fmt: skip
        # The values travel as one array per column (unnest), which keeps a batch of a thousand
        # rows to a handful of parameters. Unbounded varchar: an explicit cast to varchar(n)
        # would truncate silently, while the INSERT's own assignment cast refuses a value that
        # is too long.
        q = connection.ops.quote_name
        columns = ", ".join(q(column(f)) for f in fields)
        arrays = ", ".join(f"%b::{_VARCHAR_N.sub('varchar', f.db_type(connection) or '')}[]" for f in fields)
        sets = ", ".join(f"{q(c)} = excluded.{q(c)}" for c in updated)
        execute_binary(
            f"INSERT INTO {q(model._meta.db_table)} ({columns}) SELECT * FROM unnest({arrays}) "
            f"ON CONFLICT ({', '.join(q(c) for c in unique)}) DO UPDATE SET {sets}",
            values,
        )

    def converter(self, field: Field[Any, Any]) -> Callable[[Any], Any]:
        return Jsonb if isinstance(field, JSONField) else _enum_value

    def shadow_table_sql(self, create_table_sql: str) -> str:
        # No WAL to write while building.
        return create_table_sql.replace("CREATE TABLE", "CREATE UNLOGGED TABLE", 1)

    @contextlib.contextmanager
    def rebuild_lock(self, name: str) -> Iterator[bool]:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", [f"rebuild:{name}"])
            if not cursor.fetchone()[0]:
                yield False
                return
            try:
                yield True
            finally:
                cursor.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", [f"rebuild:{name}"])


def execute_binary(sql: str, params: Sequence[Any], *, fetch: bool = False) -> list[tuple[Any, ...]]:
    """Run one statement with server-side binding and binary results: Django's cursors quote
    every value into the query text and parse every timestamp in Python, which for a batch of a
    thousand rows costs more than the database's work. `%b` placeholders send binary parameters.
    Logged like Django's own queries, so query counts stay honest."""
    connection.ensure_connection()
    started = time.monotonic()
    with psycopg.Cursor(connection.connection) as raw:
        raw.execute(sql, params, binary=fetch)
        rows = raw.fetchall() if fetch else []
    if connection.queries_logged:
        connection.queries_log.append({"sql": sql, "time": f"{time.monotonic() - started:.3f}"})
    return rows

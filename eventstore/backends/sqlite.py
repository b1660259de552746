"""The event store on SQLite: one writer at a time (BEGIN IMMEDIATE), so positions commit in
order, nothing holds readers back, and an event's tx_id is 0."""

from __future__ import annotations

import contextlib
import enum
import json
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import msgspec
from django.db import connection
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field, JSONField, Max, Model

from eventstore.backends.base import Appended, column, select_sql
from eventstore.models import Event
from eventstore.record import DATA_INDEX, RECORDED_AT_INDEX, LogKey, RecordedEvent


class SQLiteBackend:
    name = "sqlite"
    appends_in_one_statement = False
    concurrent_writers = False
    has_roles = False
    distinct_from = "IS NOT"

    @staticmethod
    def serves(connection: BaseDatabaseWrapper) -> bool:
        return connection.vendor == "sqlite"

    # --- the log ---

    def insert(
        self, stream_id: str, rows: Sequence[Appended], expected_version: int | None
    ) -> list[tuple[int, int, int]]:
        # Inside the append's transaction, which holds the database's one write lock.
        current = Event.objects.filter(stream_id=stream_id).aggregate(v=Max("stream_version"))["v"] or 0
        if expected_version is not None and current != expected_version:
            return []
        created = Event.objects.bulk_create(
            [Event(stream_version=current + n, **row) for n, row in enumerate(rows, start=1)]
        )
        return [(r.position, r.stream_version, 0) for r in created]

    def insert_each(
        self, rows: Sequence[Appended], expected: Sequence[int]
    ) -> list[tuple[int, int, int] | None]:
        streams = [row["stream_id"] for row in rows]
        heads = dict(
            Event.objects.filter(stream_id__in=streams)
            .order_by()
            .values("stream_id")
            .annotate(v=Max("stream_version"))
            .values_list("stream_id", "v")
        )
        fresh = [
            Event(stream_version=heads.get(row["stream_id"], 0) + 1, **row)
            for row, version in zip(rows, expected, strict=True)
            if heads.get(row["stream_id"], 0) == version
        ]
        written = {e.stream_id: (e.position, e.stream_version, 0) for e in Event.objects.bulk_create(fresh)}
        return [written.get(stream) for stream in streams]

    def lock_correlations(self, correlation_ids: Sequence[str]) -> None:
        pass  # the append's transaction holds the one write lock already

    def select(
        self, after: LogKey, limit: int, types: Sequence[str] | None, *, filter_types: bool
    ) -> list[tuple[Any, ...]]:
        sql, params = select_sql(after, types, filter_types=filter_types, data="data")
        with connection.cursor() as cursor:
            cursor.execute(f"{sql} ORDER BY tx_id, position LIMIT %s", [*params, limit])
            rows: list[tuple[Any, ...]] = cursor.fetchall()
        return rows

    def recorded(self, rows: Sequence[tuple[Any, ...]]) -> list[RecordedEvent]:
        ops: Any = connection.ops  # SQLite's, which converts its text timestamps
        decode, to_datetime = msgspec.json.decode, ops.convert_datetimefield_value
        events = []
        for r in rows:
            values = list(r)
            values[DATA_INDEX] = decode(values[DATA_INDEX])
            values[RECORDED_AT_INDEX] = to_datetime(values[RECORDED_AT_INDEX], None, connection)
            events.append(RecordedEvent(*values))
        return events

    def visible_below(self) -> int | None:
        return None  # one writer at a time: positions commit in order, nothing holds readers back

    def held_back(self) -> tuple[float, int] | None:
        return None

    def distinct_types(self) -> set[str]:
        # order_by(): the model's ordering would make DISTINCT run over (type, position).
        return set(Event.objects.order_by().values_list("type", flat=True).distinct())

    # --- read models ---

    def upsert(
        self, model: type[Model], fields: Sequence[Field[Any, Any]], values: Sequence[list[Any]],
        *, unique: Sequence[str], updated: Sequence[str],
    ) -> None:  # fmt: skip
        q = connection.ops.quote_name
        columns = ", ".join(q(column(f)) for f in fields)
        placeholders = ", ".join(["%s"] * len(fields))
        sets = ", ".join(f"{q(c)} = excluded.{q(c)}" for c in updated)
        with connection.cursor() as cursor:
            cursor.executemany(
                f"INSERT INTO {q(model._meta.db_table)} ({columns}) VALUES ({placeholders}) "
                f"ON CONFLICT ({', '.join(q(c) for c in unique)}) DO UPDATE SET {sets}",
                list(zip(*values, strict=True)),
            )

    def converter(self, field: Field[Any, Any]) -> Callable[[Any], Any]:
        if isinstance(field, JSONField):
            return json.dumps
        return lambda v: field.get_db_prep_save(v.value if isinstance(v, enum.Enum) else v, connection)

    def shadow_table_sql(self, create_table_sql: str) -> str:
        return create_table_sql

    @contextlib.contextmanager
    def rebuild_lock(self, name: str) -> Iterator[bool]:
        yield True  # one writer at a time anyway

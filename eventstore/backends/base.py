"""What the event store needs from a database, and the choice of the backend that provides it.

The engine above (store, projections, replay) is written once against `Backend`; each database
implements it in its own module (postgresql.py, sqlite.py), and `eventstore.backends.backend()`
picks one per connection, once. A backend is stateless: it works on Django's `connection`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any, Protocol

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field, Model

from eventstore.record import EVENT_COLUMNS, LogKey, RecordedEvent

# The columns of one event that the appender decides (not its position, version or tx_id).
Appended = dict[str, Any]


class Backend(Protocol):
    """The database-specific half of the event store."""

    name: str
    appends_in_one_statement: bool
    """True: an unguarded append outside a transaction is one autocommitted statement."""
    concurrent_writers: bool
    """True: several processes may write at once (parallel replays make sense)."""
    has_roles: bool
    """True: the database has roles, so the log can be protected by the application role's rights."""
    distinct_from: str
    """The null-safe "differs" operator (a shadow compared with the live rows)."""

    @staticmethod
    def serves(connection: BaseDatabaseWrapper) -> bool: ...

    # --- the log ---

    def insert(
        self, stream_id: str, rows: Sequence[Appended], expected_version: int | None
    ) -> list[tuple[int, int, int]]:
        """Insert at the stream's head; (position, stream version, tx id) per event in stream
        order, or [] when the stream is not at `expected_version` (nothing written)."""
        ...

    def insert_each(
        self, rows: Sequence[Appended], expected: Sequence[int]
    ) -> list[tuple[int, int, int] | None]:
        """One event per stream, each row a stream of its own, each on its own: written at its
        stream's head when the stream is at `expected[i]`. Per row (position, stream version,
        tx id), or None for a row not written (its stream has moved)."""
        ...

    def lock_correlations(self, correlation_ids: Sequence[str]) -> None:
        """Make guarded appends of these business cases take turns, until the transaction ends
        (the ids sorted: two batches lock in one order, so they never deadlock)."""
        ...

    def select(
        self, after: LogKey, limit: int, types: Sequence[str] | None, *, filter_types: bool
    ) -> list[tuple[Any, ...]]:
        """Up to `limit` committed rows after `after` in read order, columns as EVENT_COLUMNS.
        With `types` and not `filter_types`, every row is scanned but only those of `types`
        carry their data."""
        ...

    def visible_below(self) -> int | None:
        """The transaction id below which every event is committed and visible to the next read
        (None: the database commits in position order)."""
        ...

    def recorded(self, rows: Sequence[tuple[Any, ...]]) -> list[RecordedEvent]:
        """Rows of `select` as events."""
        ...

    def held_back(self) -> tuple[float, int] | None:
        """(age in seconds, backend pid) of the oldest running write transaction that holds
        readers back, or None."""
        ...

    def distinct_types(self) -> set[str]:
        """Every event type in the log."""
        ...

    # --- read models ---

    def upsert(
        self, model: type[Model], fields: Sequence[Field[Any, Any]], values: Sequence[list[Any]],
        *, unique: Sequence[str], updated: Sequence[str],
    ) -> None:  # fmt: skip
        """INSERT ... ON CONFLICT (unique) DO UPDATE SET (updated), in one statement.
        `values` holds one list per field (a column), each already converted by `converter`."""
        ...

    def converter(self, field: Field[Any, Any]) -> Any:
        """A function turning a read-model value into what the driver takes for `field`."""
        ...

    def shadow_table_sql(self, create_table_sql: str) -> str:
        """The CREATE TABLE of a replay's shadow table (it is disposable until the swap)."""
        ...

    def rebuild_lock(self, name: str) -> contextlib.AbstractContextManager[bool]:
        """Held while `name` is rebuilt; yields False if another process rebuilds it."""
        ...


def select_sql(
    after: LogKey, types: Sequence[str] | None, *, filter_types: bool, data: str
) -> tuple[str, list[Any]]:
    """The SELECT of the log after `after` (every column, `data` as given), up to its bound."""
    in_types = f"type IN ({', '.join(['%s'] * len(types))})" if types else "FALSE"
    params: list[Any] = []
    if types is not None and not filter_types:
        data = f"CASE WHEN {in_types} THEN {data} END"
        params += list(types)
    columns = ", ".join(data if c == "data" else c for c in EVENT_COLUMNS)
    sql = f"SELECT {columns} FROM eventstore_event WHERE (tx_id, position) > (%s, %s)"
    params += [after.tx_id, after.position]
    if types is not None and filter_types:
        sql += f" AND {in_types}"
        params += list(types)
    return sql, params


def model_field(model: type[Model], name: str) -> Field[Any, Any]:
    """The field of a column of `model` (not a relation's reverse side)."""
    field = model._meta.get_field(name)
    if not isinstance(field, Field):
        raise TypeError(f"{model.__name__}.{name} is not a column")
    return field


def column(field: Field[Any, Any]) -> str:
    if field.column is None:
        raise TypeError(f"{field} has no column")
    return field.column

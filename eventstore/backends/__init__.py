"""The event store's database backends: one module per database, behind `Backend`
(eventstore/backends/base.py). A new database gets a module here and a line in `_BACKENDS`."""

from __future__ import annotations

from django.db import connections

from eventstore.backends.base import Backend
from eventstore.backends.postgresql import PostgreSQLBackend
from eventstore.backends.sqlite import SQLiteBackend

_BACKENDS: tuple[type[Backend], ...] = (PostgreSQLBackend, SQLiteBackend)
_CHOSEN: dict[str, Backend] = {}


def backend(using: str = "default") -> Backend:
    """The backend of database `using`, chosen once."""
    chosen = _CHOSEN.get(using)
    if chosen is None:
        connection = connections[using]
        for candidate in _BACKENDS:
            if candidate.serves(connection):
                chosen = _CHOSEN[using] = candidate()
                break
        else:
            raise NotImplementedError(
                f"the event store has no backend for {connection.display_name} ({using})"
            )
    return chosen


__all__ = ["Backend", "backend"]

"""One event as stored, and a place in the log's read order: the values the store and its
backends pass between them."""

from __future__ import annotations

import builtins
import dataclasses
import datetime
from typing import Any, TypeVar

from eventstore.events import DomainEvent, event_decode
from eventstore.models import Event

T = TypeVar("T", bound=DomainEvent)


@dataclasses.dataclass(frozen=True, slots=True)
class RecordedEvent:
    """One event as stored: its place in the log, its metadata, and its data.

    The fields are the log's columns, in the order every SELECT of the log returns them
    (`EVENT_COLUMNS`), so a row becomes an event by position without naming them again.
    """

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

    def event_as(self, cls: builtins.type[T]) -> T:
        """The typed event, known to be a `cls` (e.g. read by its type): a TypeError if it is not."""
        event = self.event
        if not isinstance(event, cls):
            raise TypeError(f"event {self.position} is a {self.type}, not a {cls.__name__}")
        return event

    @property
    def key(self) -> LogKey:
        return LogKey(self.tx_id, self.position)

    @classmethod
    def from_row(cls, row: Event) -> RecordedEvent:
        """The event of an `Event` model instance."""
        return cls(*(getattr(row, c) for c in EVENT_COLUMNS))


# The log's columns, in the order every SELECT of the log returns them.
EVENT_COLUMNS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(RecordedEvent))
POSITION_INDEX = EVENT_COLUMNS.index("position")
TYPE_INDEX = EVENT_COLUMNS.index("type")
TX_ID_INDEX = EVENT_COLUMNS.index("tx_id")
DATA_INDEX = EVENT_COLUMNS.index("data")
RECORDED_AT_INDEX = EVENT_COLUMNS.index("recorded_at")


@dataclasses.dataclass(frozen=True, slots=True, order=True)
class LogKey:
    """A place in the read order of the log: (transaction id, position)."""

    tx_id: int = 0
    position: int = 0

"""Events the automation runner and operators record about items, for any list."""

import dataclasses
import datetime

from eventstore.events import event_type


@event_type("TodoAttemptFailed")
@dataclasses.dataclass(frozen=True, kw_only=True)
class TodoAttemptFailed:
    list: str
    key: str
    attempt: int
    error: str
    retry_at: datetime.datetime


@event_type("TodoItemParked")
@dataclasses.dataclass(frozen=True, kw_only=True)
class TodoItemParked:
    list: str
    key: str
    reason: str


@event_type("TodoRetryRequested")
@dataclasses.dataclass(frozen=True, kw_only=True)
class TodoRetryRequested:
    list: str
    key: str

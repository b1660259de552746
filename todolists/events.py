"""Events the automation runner and operators record about items, for any list."""

import datetime

from eventstore.events import DomainEvent, event_type


@event_type("TodoAttemptFailed")
class TodoAttemptFailed(DomainEvent):
    """A transient failure (timeout, 5xx, a bug): the item is tried again at `retry_at`."""

    list: str
    key: str
    attempt: int
    error: str
    retry_at: datetime.datetime


@event_type("TodoItemParked")
class TodoItemParked(DomainEvent):
    list: str
    key: str
    reason: str


@event_type("TodoRetryRequested")
class TodoRetryRequested(DomainEvent):
    list: str
    key: str
    reason: str = ""
    """The operator's words (empty on events recorded before reasons were asked for)."""

"""The projection engine: plain handler functions, registered explicitly, no Django signals.

A projection is a name, the event types it handles (one function each) and a reset function that
empties its tables. Catch-up reads the log after the projection's checkpoint and writes the
read-model changes and the new checkpoint in one transaction, holding a row lock on the
checkpoint so two catch-ups of one projection never apply the same batch twice.

A handler that raises stops the projection at that event: the events before it in the batch are
kept, the checkpoint stays just before it, the error is written on the checkpoint row (where
`projection_status` and the admin show it), and the next catch-up tries the event again.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Mapping, Sequence

from django.db import IntegrityError, transaction
from django.utils import timezone

from eventstore.models import ProjectionCheckpoint
from eventstore.registry import Registry
from eventstore.store import RecordedEvent, log_head, log_read

Handler = Callable[[RecordedEvent], None]


@dataclasses.dataclass(frozen=True)
class Projection:
    name: str
    handlers: Mapping[str, Handler]
    reset: Callable[[], object]
    """Empties the projection's tables before a replay. If it returns a callable, that runs after
    the rebuild (to put back operational state, such as claims, that the log does not hold)."""
    title: str = ""

    @property
    def types(self) -> list[str]:
        return sorted(self.handlers)


registry: Registry[Projection] = Registry("projection")


@dataclasses.dataclass(frozen=True)
class CatchUpResult:
    name: str
    applied: int
    position: int
    error: str = ""


@dataclasses.dataclass(frozen=True)
class ProjectionStatus:
    name: str
    position: int
    head: int
    lag: int
    halted: bool
    error_position: int | None
    error_type: str
    error_message: str
    error_count: int

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def _checkpoint_locked(name: str) -> ProjectionCheckpoint:
    with contextlib.suppress(IntegrityError):  # created by a concurrent catch-up in between
        ProjectionCheckpoint.objects.get_or_create(name=name)
    # Blocks while another catch-up of this projection holds the row, then sees its checkpoint.
    return ProjectionCheckpoint.objects.select_for_update().get(name=name)


class _HandlerFailed(Exception):
    def __init__(self, index: int, error: Exception) -> None:
        self.index = index
        self.error = error


def _apply(projection: Projection, events: Sequence[RecordedEvent]) -> None:
    """Apply events in one savepoint; on a handler error roll all of them back and say which failed."""
    with transaction.atomic():
        for i, event in enumerate(events):
            try:
                projection.handlers[event.type](event)
            except Exception as exc:
                raise _HandlerFailed(i, exc) from exc


def _apply_batch(
    projection: Projection, checkpoint: ProjectionCheckpoint, batch_size: int
) -> tuple[int, bool]:
    """Apply one batch after the checkpoint (caller holds the lock). Returns (applied, done)."""
    # Every event at or below the head read here has committed (appends are serialized), so the
    # checkpoint may jump over events of types this projection does not handle.
    head = log_head()
    events = log_read(after=checkpoint.position, limit=batch_size, up_to=head, types=projection.types)
    try:
        _apply(projection, events)
    except _HandlerFailed as failure:
        good, bad = events[: failure.index], events[failure.index]
        _apply(projection, good)  # they succeeded a moment ago; keep them
        if good:
            checkpoint.position = good[-1].position
        checkpoint.error_position = bad.position
        checkpoint.error_type = bad.type
        checkpoint.error_message = f"{type(failure.error).__name__}: {failure.error}"[:2000]
        checkpoint.error_count += 1
        checkpoint.error_at = timezone.now()
        checkpoint.save()
        return len(good), True
    done = len(events) < batch_size
    position = head if done else events[-1].position
    if position == checkpoint.position and checkpoint.error_position is None:
        return 0, done  # nothing new: no write, so an idle catch-up costs only reads
    checkpoint.position = position
    _clear_error(checkpoint)
    checkpoint.save()
    return len(events), done


def _clear_error(checkpoint: ProjectionCheckpoint) -> None:
    checkpoint.error_position, checkpoint.error_type, checkpoint.error_message = None, "", ""
    checkpoint.error_count, checkpoint.error_at = 0, None


def projection_catch_up(
    *, name: str, batch_size: int = 500, progress: Callable[[int], None] | None = None
) -> CatchUpResult:
    """Apply every event after the checkpoint, a batch per transaction, until caught up or halted.

    `progress` is called with the checkpoint position after each batch.
    """
    projection = registry.get(name)
    applied = 0
    while True:
        with transaction.atomic():
            checkpoint = _checkpoint_locked(name)
            n, done = _apply_batch(projection, checkpoint, batch_size)
        applied += n
        if progress:
            progress(checkpoint.position)
        if done:
            return CatchUpResult(name, applied, checkpoint.position, checkpoint.error_message)


def projections_catch_up(*, batch_size: int = 500) -> list[CatchUpResult]:
    return [projection_catch_up(name=n, batch_size=batch_size) for n in registry.names()]


def projection_replay(
    *, name: str, batch_size: int = 1000, progress: Callable[[int], None] | None = None
) -> CatchUpResult:
    """Empty one projection and rebuild it from position 0, in a single transaction.

    Readers keep seeing the old rows until the rebuilt ones commit, and live catch-ups of this
    projection wait on the checkpoint lock, so the system may keep running meanwhile. Handlers
    only write read models: replay never calls the payment gateway or appends events.
    """
    projection = registry.get(name)
    applied = 0
    try:
        with transaction.atomic():
            checkpoint = _checkpoint_locked(name)
            restore = projection.reset()
            checkpoint.position = 0
            _clear_error(checkpoint)
            while True:
                n, done = _apply_batch(projection, checkpoint, batch_size)
                applied += n
                if checkpoint.error_position is not None:
                    raise _ReplayHalted(checkpoint.error_message)
                if progress:
                    progress(checkpoint.position)
                if done:
                    break
            if callable(restore):
                restore()
    except _ReplayHalted as halted:
        # Rolled back: a half-built projection never replaces the working one.
        live = ProjectionCheckpoint.objects.filter(name=name).first()
        return CatchUpResult(name, 0, live.position if live else 0, f"replay rolled back: {halted}")
    return CatchUpResult(name, applied, checkpoint.position, "")


class _ReplayHalted(Exception):
    pass


def projection_status(*, name: str | None = None) -> list[ProjectionStatus]:
    names = [registry.get(name).name] if name else registry.names()
    head = log_head()
    rows = ProjectionCheckpoint.objects.in_bulk(names)
    result = []
    for n in names:
        cp = rows.get(n) or ProjectionCheckpoint(name=n)
        result.append(
            ProjectionStatus(
                name=n,
                position=cp.position,
                head=head,
                lag=max(head - cp.position, 0),
                halted=cp.halted,
                error_position=cp.error_position,
                error_type=cp.error_type,
                error_message=cp.error_message,
                error_count=cp.error_count,
            )
        )
    return result

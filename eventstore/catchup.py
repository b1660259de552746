"""Catching a projection up with the log.

Catch-up reads the log after the projection's checkpoint and writes the read-model changes and the
new checkpoint in one transaction, holding a row lock on the checkpoint, so two catch-ups of one
projection never apply the same batch twice.

An event that cannot be read (malformed data) or that makes `apply` raise stops the projection at
that event: the events before it are kept, the checkpoint stays just before it, the error and
position are written on the checkpoint row (where `projection_status`, /health/ and the admin
show it), and the next catch-up tries again. The way past a poison event is an operator's
`ProjectionEventSkipped` event in the log (`projection_skip`), which replays honour the same way.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable

import psycopg
from django.db import OperationalError, transaction
from django.utils import timezone

from eventstore.events import DomainEvent, InvalidEvent, ProjectionEventSkipped
from eventstore.models import ProjectionCheckpoint
from eventstore.projection import Batch, Envelope, ModelMap, Projection, registry
from eventstore.record import LogKey, RecordedEvent
from eventstore.store import log_read, log_scan


@dataclasses.dataclass(frozen=True)
class CatchUpResult:
    name: str
    applied: int
    position: int
    error: str = ""
    skipped: int = 0


def checkpoint_locked(name: str) -> ProjectionCheckpoint:
    # Blocks while another catch-up of this projection holds the row, then sees its checkpoint.
    checkpoint = ProjectionCheckpoint.objects.select_for_update().filter(name=name).first()
    if checkpoint is None:
        ProjectionCheckpoint.objects.bulk_create([ProjectionCheckpoint(name=name)], ignore_conflicts=True)
        checkpoint = ProjectionCheckpoint.objects.select_for_update().get(name=name)
    return checkpoint


def skipped_positions(*, name: str) -> set[int]:
    """Positions the operators told projection `name` to pass over, from their events in the log
    (the truth a replay starts from; live catch-ups read the checkpoint's copy)."""
    skips = (e.event for e in log_read(types=[ProjectionEventSkipped.event_type], limit=1_000_000))
    return {e.position for e in skips if isinstance(e, ProjectionEventSkipped) and e.projection == name}


class ProjectionHalted(Exception):
    """The event at `recorded` cannot be applied; those before it (`applied` of them, up to
    `before`) were."""

    def __init__(self, recorded: RecordedEvent, error: Exception) -> None:
        self.recorded = recorded
        self.error = error
        self.before = LogKey()
        self.applied = 0


def _decode(events: Iterable[RecordedEvent]) -> Iterable[Envelope[DomainEvent]]:
    for recorded in events:
        try:
            yield Envelope(event=recorded.event, recorded=recorded)
        except InvalidEvent as exc:
            raise ProjectionHalted(recorded, exc) from None


# Errors of the database's state, not of the events (Django's and psycopg's own, from raw cursors).
OPERATIONAL_ERRORS = (OperationalError, psycopg.OperationalError)


def _apply_events(projection: Projection, events: list[RecordedEvent], models_: ModelMap) -> None:
    """Apply in one savepoint; if anything fails, find the first bad event (keeping those before
    it, each applied alone) and raise ProjectionHalted for it."""
    envelopes: list[Envelope[DomainEvent]] = []
    unreadable: ProjectionHalted | None = None
    try:
        envelopes.extend(_decode(events))
    except ProjectionHalted as halt:
        unreadable = halt
    try:
        with transaction.atomic():
            projection.apply(Batch(envelopes, models_))
    except OPERATIONAL_ERRORS:
        raise  # a deadlock or a timeout says nothing about the events: try the batch again later
    except Exception as batch_error:
        singles = transaction.savepoint()
        for envelope in envelopes:
            try:
                with transaction.atomic():
                    projection.apply(Batch([envelope], models_))
            except OPERATIONAL_ERRORS:
                transaction.savepoint_rollback(singles)
                raise
            except Exception as exc:
                transaction.savepoint_commit(singles)  # keep the events before the bad one
                raise ProjectionHalted(envelope.recorded, exc) from exc
        # Every event alone is fine, the batch is not (a bug in `apply`): undo, halt at its start.
        transaction.savepoint_rollback(singles)
        raise ProjectionHalted(envelopes[0].recorded, batch_error) from batch_error
    if unreadable:
        raise unreadable


@dataclasses.dataclass
class BatchProgress:
    key: LogKey
    applied: int = 0
    skipped: int = 0
    done: bool = False


def apply_batch(
    projection: Projection,
    key: LogKey,
    batch_size: int,
    skips: set[int],
    models_: ModelMap | None = None,
) -> BatchProgress:
    """Apply the next batch after `key`. Raises ProjectionHalted with the events before the bad one applied."""
    events, last, scanned = log_scan(after=key, limit=batch_size, types=projection.types)
    if last is None:
        return BatchProgress(key, done=True)
    wanted = [e for e in events if e.position not in skips]
    progress = BatchProgress(last, skipped=len(events) - len(wanted), done=scanned < batch_size)
    try:
        _apply_events(projection, wanted, models_ or {})
    except ProjectionHalted as halt:
        good = [e for e in wanted if e.key < halt.recorded.key]
        halt.before = good[-1].key if good else key
        halt.applied = len(good)
        raise
    progress.applied = len(wanted)
    return progress


def _record_halt(checkpoint: ProjectionCheckpoint, halt: ProjectionHalted) -> None:
    checkpoint.tx_id, checkpoint.position = halt.before.tx_id, halt.before.position
    checkpoint.error_position = halt.recorded.position
    checkpoint.error_type = halt.recorded.type
    checkpoint.error_message = f"{type(halt.error).__name__}: {halt.error}"[:2000]
    checkpoint.error_count += 1
    checkpoint.error_at = timezone.now()
    checkpoint.save()


def clear_error(checkpoint: ProjectionCheckpoint) -> None:
    checkpoint.error_position, checkpoint.error_type, checkpoint.error_message = None, "", ""
    checkpoint.error_count, checkpoint.error_at = 0, None


def projection_catch_up(
    *, name: str, batch_size: int = 2000, progress: Callable[[int], None] | None = None
) -> CatchUpResult:
    """Apply every committed event after the checkpoint, a batch per transaction, until caught up
    or halted. `progress` is called with the checkpoint position after each batch."""
    projection = registry.get(name)
    applied = skipped = 0
    while True:
        with transaction.atomic():
            checkpoint = checkpoint_locked(name)
            key = LogKey(checkpoint.tx_id, checkpoint.position)
            try:
                step = apply_batch(projection, key, batch_size, set(checkpoint.skipped))
            except ProjectionHalted as halt:
                _record_halt(checkpoint, halt)
                applied += halt.applied
                return CatchUpResult(name, applied, checkpoint.position, checkpoint.error_message, skipped)
            if step.key != key or checkpoint.error_position is not None:
                checkpoint.tx_id, checkpoint.position = step.key.tx_id, step.key.position
                clear_error(checkpoint)
                checkpoint.save()  # an idle catch-up writes nothing
        applied, skipped = applied + step.applied, skipped + step.skipped
        if progress:
            progress(checkpoint.position)
        if step.done or step.key == key:
            return CatchUpResult(name, applied, checkpoint.position, "", skipped)


def projections_catch_up(*, batch_size: int = 2000) -> list[CatchUpResult]:
    return [projection_catch_up(name=n, batch_size=batch_size) for n in registry.names()]

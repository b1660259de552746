"""Catching a projection up with the log.

Catch-up reads the log after the projection's checkpoint and writes the read-model changes and the
new checkpoint in one transaction, holding a row lock on the checkpoint, so two catch-ups of one
projection never apply the same batch twice.

A poison event stops only its business case (AxonIQ's sequenced dead letters, the sequence being
the event's correlation id). An event that cannot be read (malformed data) or that makes `apply`
raise is *parked*: a `ParkedEvent` row with the error, its case added to the checkpoint's `parked`
copy. Every later event of that case is queued behind it (a row without an error), never applied
out of order, while every other case goes on and the checkpoint moves past the batch. An operator
retries the case after a fix, or skips its first event with a recorded `ParkedEventSkipped`
(eventstore/parked_cases.py); lists never work a parked case (`held_correlations`).

A failure that is not about one event does not park:
- an OperationalError (database down, deadlock, timeout) neither parks nor halts: the batch is
  rolled back and tried again at the next catch-up;
- the projection halts as a whole, at the first such event, with the events before it applied,
  when the failure looks like code rather than data: an event with no business case (an
  operator's), the same exception class on the same event type for `CODE_LIKE_CASES` or more
  distinct cases while no event of that type applied meanwhile (a handler bug hits every event),
  in one batch or across catch-ups (those parked earlier count: under a trickle each catch-up
  sees one event), or more parked cases than `EVENTSTORE_PARKED_CASES_LIMIT` (default 100).
  The error and position are written on the checkpoint row (where `projection_status`, /health/
  and the admin show it), the next catch-up tries again, and the way past is an operator's
  `ProjectionEventSkipped` event in the log (`projection_skip`), which replays honour the same way.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
from collections.abc import Callable, Iterable, Sequence

import psycopg
from django.db import OperationalError, transaction
from django.utils import timezone

from eventstore.conf import conf
from eventstore.events import DomainEvent, InvalidEvent, ParkedEventSkipped, ProjectionEventSkipped
from eventstore.models import Event, ParkedEvent, ProjectionCheckpoint
from eventstore.parked import Parking, error_text, parked_rows_write
from eventstore.projection import Batch, Envelope, ModelMap, Projection, registry
from eventstore.record import LogKey, RecordedEvent
from eventstore.store import log_read, log_scan

CODE_LIKE_CASES = 3
"""Distinct cases failing alike (same type, same exception class), with no event of their type
applied meanwhile, that halt the projection: in one batch, or parked by earlier catch-ups."""


@dataclasses.dataclass(frozen=True)
class CatchUpResult:
    name: str
    applied: int
    position: int
    error: str = ""
    skipped: int = 0
    parked: int = 0
    """Events parked or queued behind a parked one by this catch-up."""


def checkpoint_locked(name: str) -> ProjectionCheckpoint:
    # Blocks while another catch-up of this projection holds the row, then sees its checkpoint.
    checkpoint = ProjectionCheckpoint.objects.select_for_update().filter(name=name).first()
    if checkpoint is None:
        ProjectionCheckpoint.objects.bulk_create([ProjectionCheckpoint(name=name)], ignore_conflicts=True)
        checkpoint = ProjectionCheckpoint.objects.select_for_update().get(name=name)
    return checkpoint


def skipped_positions(*, name: str) -> set[int]:
    """Positions the operators told projection `name` to pass over, from their events in the log
    (the truth a replay starts from; live catch-ups read the checkpoint's copy): a halted
    projection's skips and a parked case's."""
    types = [ProjectionEventSkipped.event_type, ParkedEventSkipped.event_type]
    skips = (e.event for e in log_read(types=types, limit=1_000_000))
    return {
        e.position
        for e in skips
        if (isinstance(e, ProjectionEventSkipped) and e.projection == name)
        or (isinstance(e, ParkedEventSkipped) and name in e.projections)
    }


class ProjectionHalted(Exception):
    """The event at `recorded` cannot be applied and cannot be parked; those before it (`applied`
    of them, up to `before`) were applied or parked (`parked`)."""

    def __init__(self, recorded: RecordedEvent, error: Exception) -> None:
        self.recorded = recorded
        self.error = error
        self.before = LogKey()
        self.applied = 0
        self.parked: list[Parking] = []


# Errors of the database's state, not of the events (Django's and psycopg's own, from raw cursors).
OPERATIONAL_ERRORS = (OperationalError, psycopg.OperationalError)


@dataclasses.dataclass(frozen=True)
class _Unreadable:
    recorded: RecordedEvent
    error: InvalidEvent


Decoded = Envelope[DomainEvent] | _Unreadable


def _decode(events: Iterable[RecordedEvent]) -> list[Decoded]:
    decoded: list[Decoded] = []
    for recorded in events:
        try:
            decoded.append(Envelope(event=recorded.event, recorded=recorded))
        except InvalidEvent as exc:
            decoded.append(_Unreadable(recorded, exc))
    return decoded


@dataclasses.dataclass
class _Sorted:
    """A batch sorted into the events to apply, those parked, and the failures (with their errors)."""

    apply: list[Envelope[DomainEvent]] = dataclasses.field(default_factory=list)
    parked: list[Parking] = dataclasses.field(default_factory=list)
    failed: list[tuple[RecordedEvent, Exception]] = dataclasses.field(default_factory=list)


def _sort(
    decoded: Sequence[Decoded], cases: set[str], try_one: Callable[[Envelope[DomainEvent]], None] | None
) -> _Sorted:
    """In log order: an event of a parked case is queued; an unreadable one, or one `try_one`
    (applying it alone) raises on, parks its case. Without `try_one` readable events are assumed
    fine (the batch is applied whole afterwards)."""
    result, blocked = _Sorted(), set(cases)
    for item in decoded:
        recorded = item.recorded
        if recorded.correlation_id in blocked:
            result.parked.append(Parking(recorded))
            continue
        error: Exception | None = item.error if isinstance(item, _Unreadable) else None
        if isinstance(item, Envelope):
            if try_one is None:
                result.apply.append(item)
                continue
            try:
                try_one(item)
                result.apply.append(item)
                continue
            except OPERATIONAL_ERRORS:
                raise
            except Exception as exc:
                error = exc
        assert error is not None
        result.failed.append((recorded, error))
        result.parked.append(Parking(recorded, error_text(error)))
        if recorded.correlation_id:
            blocked.add(recorded.correlation_id)
    return result


Alike = dict[tuple[str, str], set[str]]
"""Business cases by (event type, exception class) of the failure that parked them."""


def _halt_at(
    sorted_: _Sorted, cases: set[str], earlier: Callable[[], Alike] | None = None
) -> tuple[RecordedEvent, Exception] | None:
    """The first failure the projection must halt on instead of parking (see the module's
    docstring). `earlier` gives the cases parked alike by earlier catch-ups, whose type has not
    applied since: they count with the batch's own."""
    if not sorted_.failed:
        return None  # the healthy path
    halts: list[tuple[RecordedEvent, Exception]] = []
    applied_types = {e.type for e in sorted_.apply}
    alike: dict[tuple[str, str], list[tuple[RecordedEvent, Exception]]] = collections.defaultdict(list)
    parked = set(cases)
    for recorded, error in sorted_.failed:
        if not recorded.correlation_id:
            halts.append((recorded, error))
            continue
        alike[(recorded.type, type(error).__name__)].append((recorded, error))
        parked.add(recorded.correlation_id)
        if len(parked) > conf.parked_cases_limit:
            limit = conf.parked_cases_limit
            halts.append((recorded, RuntimeError(f"more than {limit} parked cases ({error_text(error)})")))
    before = earlier() if earlier is not None else {}
    for (type_name, kind), failures in alike.items():
        distinct = {r.correlation_id for r, _ in failures} | before.get((type_name, kind), set())
        if len(distinct) >= CODE_LIKE_CASES and type_name not in applied_types:
            recorded, error = failures[0]
            halts.append((recorded, error))
    return min(halts, key=lambda h: h[0].key, default=None)


def _apply_events(
    projection: Projection,
    events: list[RecordedEvent],
    models_: ModelMap,
    cases: set[str],
    earlier: Callable[[], Alike] | None = None,
) -> list[Parking]:
    """Apply the events of cases not parked in one savepoint and return those parked. If that
    fails, apply them one at a time to find the failing ones. Raises ProjectionHalted (with the
    events before it applied or parked) on a failure that is not about one event."""
    decoded = _decode(events)
    outcome = _sort(decoded, cases, None)
    halt = _halt_at(outcome, cases, earlier)
    if halt is None:
        try:
            with transaction.atomic():
                projection.apply(Batch(outcome.apply, models_))
            return outcome.parked
        except OPERATIONAL_ERRORS:
            raise  # a deadlock or a timeout says nothing about the events: try the batch again later
        except Exception as batch_error:
            outcome, halt = _apply_singles(projection, decoded, models_, cases, batch_error, earlier)
            if halt is None:
                return outcome.parked
    recorded, error = halt
    halted = ProjectionHalted(recorded, error)
    before = [e for e in events if e.key < recorded.key]
    halted.parked = _apply_events(projection, before, models_, cases) if before else []
    raise halted


def _apply_singles(
    projection: Projection,
    decoded: list[Decoded],
    models_: ModelMap,
    cases: set[str],
    batch_error: Exception,
    earlier: Callable[[], Alike] | None,
) -> tuple[_Sorted, tuple[RecordedEvent, Exception] | None]:
    """Each event alone, in log order; undone as a whole when the projection must halt."""
    singles = transaction.savepoint()

    def try_one(envelope: Envelope[DomainEvent]) -> None:
        with transaction.atomic():
            projection.apply(Batch([envelope], models_))

    try:
        outcome = _sort(decoded, cases, try_one)
    except OPERATIONAL_ERRORS:
        transaction.savepoint_rollback(singles)
        raise
    halt = _halt_at(outcome, cases, earlier)
    if halt is None and not outcome.failed:
        # Every event alone is fine, the batch is not (a bug in `apply`): halt at its start.
        halt = (decoded[0].recorded, batch_error)
    if halt is None:
        transaction.savepoint_commit(singles)
    else:
        transaction.savepoint_rollback(singles)
    return outcome, halt


def case_apply(
    projection: Projection, events: Sequence[RecordedEvent], skips: set[int], models_: ModelMap
) -> tuple[int, Exception | None]:
    """Apply a parked case's events one at a time in log order, passing the skipped ones, up to the
    first that fails: (how many were applied or passed, the error it stopped on or None)."""
    for handled, recorded in enumerate(events):
        if recorded.position in skips:
            continue
        try:
            with transaction.atomic():
                projection.apply(Batch([Envelope(event=recorded.event, recorded=recorded)], models_))
        except OPERATIONAL_ERRORS:
            raise
        except Exception as exc:
            return handled, exc
    return len(events), None


@dataclasses.dataclass
class BatchProgress:
    key: LogKey
    applied: int = 0
    skipped: int = 0
    done: bool = False
    parked: list[Parking] = dataclasses.field(default_factory=list)
    """Events parked (the first failing event of a case) or queued behind one, in log order."""


def apply_batch(
    projection: Projection,
    key: LogKey,
    batch_size: int,
    skips: set[int],
    models_: ModelMap | None = None,
    parked: set[str] | None = None,
    earlier: Callable[[], Alike] | None = None,
) -> BatchProgress:
    """Apply the next batch after `key`, except the events of the `parked` cases and of the cases
    it parks (returned in `parked`; the caller records them and adds their cases to its set).
    Raises ProjectionHalted with the events before the bad one applied or parked."""
    events, last, scanned = log_scan(after=key, limit=batch_size, types=projection.types)
    if last is None:
        return BatchProgress(key, done=True)
    wanted = [e for e in events if e.position not in skips]
    progress = BatchProgress(last, skipped=len(events) - len(wanted), done=scanned < batch_size)
    try:
        progress.parked = _apply_events(projection, wanted, models_ or {}, parked or set(), earlier)
    except ProjectionHalted as halt:
        good = [e for e in wanted if e.key < halt.recorded.key]
        halt.before = good[-1].key if good else key
        halt.applied = len(good) - len(halt.parked)
        raise
    progress.applied = len(wanted) - len(progress.parked)
    return progress


def _record_halt(checkpoint: ProjectionCheckpoint, halt: ProjectionHalted) -> None:
    parked_rows_write(checkpoint=checkpoint, parkings=halt.parked)
    checkpoint.tx_id, checkpoint.position = halt.before.tx_id, halt.before.position
    checkpoint.error_position = halt.recorded.position
    checkpoint.error_type = halt.recorded.type
    checkpoint.error_message = error_text(halt.error)
    checkpoint.error_count += 1
    checkpoint.error_at = timezone.now()
    checkpoint.save()


def clear_error(checkpoint: ProjectionCheckpoint) -> None:
    checkpoint.error_position, checkpoint.error_type, checkpoint.error_message = None, "", ""
    checkpoint.error_count, checkpoint.error_at = 0, None


def parked_alike(*, name: str, upto: int, parked: set[str]) -> Alike:
    """The cases projection `name` parked on their first failure, by (event type, exception
    class), counting only those parked after the last event of their type it applied (up to the
    checkpoint at `upto`): a handler bug that hits each event of a type as it comes, one per
    catch-up, is told from bad data as within one batch, and an old parking for bad data before a
    good event does not count. Read only when a batch has failures."""
    rows = list(
        ParkedEvent.objects.filter(projection=name)
        .exclude(error="")
        .values_list("type", "error", "correlation_id", "position")
    )
    last_applied = {
        type_name: Event.objects.filter(type=type_name, position__lte=upto)
        .exclude(correlation_id__in=parked)
        .order_by("-position")
        .values_list("position", flat=True)
        .first()
        or 0
        for type_name in {r[0] for r in rows}
    }
    alike: Alike = collections.defaultdict(set)
    for type_name, error, case, position in rows:
        if position > last_applied[type_name]:
            alike[(type_name, error.split(":", 1)[0])].add(case)
    return alike


def projection_catch_up(
    *, name: str, batch_size: int = 2000, progress: Callable[[int], None] | None = None
) -> CatchUpResult:
    """Apply every committed event after the checkpoint, a batch per transaction, until caught up
    or halted, parking the business cases whose events fail. `progress` is called with the
    checkpoint position after each batch."""
    projection = registry.get(name)
    applied = skipped = parked = 0
    while True:
        with transaction.atomic():
            checkpoint = checkpoint_locked(name)
            key = LogKey(checkpoint.tx_id, checkpoint.position)
            try:
                parked_cases = set(checkpoint.parked)
                step = apply_batch(
                    projection, key, batch_size, set(checkpoint.skipped), parked=parked_cases,
                    earlier=functools.cache(functools.partial(parked_alike, name=name, upto=key.position, parked=parked_cases)),
                )  # fmt: skip
            except ProjectionHalted as halt:
                _record_halt(checkpoint, halt)
                applied, parked = applied + halt.applied, parked + len(halt.parked)
                return CatchUpResult(
                    name, applied, checkpoint.position, checkpoint.error_message, skipped, parked
                )
            if step.key != key or checkpoint.error_position is not None:
                parked_rows_write(checkpoint=checkpoint, parkings=step.parked)
                checkpoint.tx_id, checkpoint.position = step.key.tx_id, step.key.position
                clear_error(checkpoint)
                checkpoint.save()  # an idle catch-up writes nothing
        applied, skipped, parked = applied + step.applied, skipped + step.skipped, parked + len(step.parked)
        if progress:
            progress(checkpoint.position)
        if step.done or step.key == key:
            return CatchUpResult(name, applied, checkpoint.position, "", skipped, parked)


def projections_catch_up(*, batch_size: int = 2000) -> list[CatchUpResult]:
    return [projection_catch_up(name=n, batch_size=batch_size) for n in registry.names()]

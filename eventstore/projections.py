"""The projection engine: plain functions that apply batches of typed events, registered
explicitly, no Django signals.

A projection is a name, the event types it handles, and one `apply(batch)` function that writes a
whole batch of events in a constant number of statements (`row_projection` builds one for the
common "one row per key" read model: one SELECT of the batch's rows, a fold in memory, one upsert).
Handlers only ever see typed, upcast events (`Envelope.event`), decoded by the engine.

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
import datetime
import enum
import json
import re
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import Any

import psycopg
from django.conf import settings
from django.db import OperationalError, connection, models, transaction
from django.utils import timezone
from psycopg.types.json import Jsonb

from eventstore.events import InvalidEvent, ProjectionEventSkipped, registered_types
from eventstore.models import Event, ProjectionCheckpoint
from eventstore.registry import Registry
from eventstore.store import (
    LogKey,
    RecordedEvent,
    event_append,
    execute_binary,
    log_head,
    log_held_back,
    log_read,
    log_scan,
)


@dataclasses.dataclass(frozen=True, slots=True)
class Envelope:
    """A typed event with its place in the log: what every handler receives."""

    event: Any
    recorded: RecordedEvent

    @property
    def type(self) -> str:
        return self.recorded.type

    @property
    def position(self) -> int:
        return self.recorded.position

    @property
    def stream_id(self) -> str:
        return self.recorded.stream_id

    @property
    def correlation_id(self) -> str:
        return self.recorded.correlation_id

    @property
    def causation_id(self) -> str:
        return self.recorded.causation_id

    @property
    def actor(self) -> str:
        return self.recorded.actor

    @property
    def recorded_at(self) -> datetime.datetime:
        return self.recorded.recorded_at


@dataclasses.dataclass(frozen=True)
class Batch:
    """The events one `apply` call writes, and the model classes to write them to: the live
    tables, or a replay's shadow copies of them."""

    events: Sequence[Envelope]
    models: Mapping[type[models.Model], type[models.Model]] = dataclasses.field(default_factory=dict)

    def model(self, model: type[models.Model]) -> type[models.Model]:
        return self.models.get(model, model)


@dataclasses.dataclass(frozen=True)
class Table:
    """A table a projection writes, for the replay's shadow copy and swap.

    `key`: the columns that identify a row across a rebuild (empty: the table's rows are replaced
    wholesale). `scope`: column values that select this projection's rows when several projections
    share the table. `operational`: columns the log does not hold (claims), kept through a swap.
    """

    model: type[models.Model]
    key: tuple[str, ...] = ()
    scope: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    operational: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Projection:
    name: str
    handles: tuple[str, ...]
    apply: Callable[[Batch], None]
    """Writes a whole batch; it must not call gateways or append events (replay runs it too)."""
    tables: tuple[Table, ...] = ()
    title: str = ""

    @property
    def types(self) -> list[str]:
        return sorted(set(self.handles))


registry: Registry[Projection] = Registry("projection")


# --- one row per key ---------------------------------------------------------------------------------

Row = dict[str, Any]
RowHandler = Callable[[Row | None, Envelope], Row | None]


def row_projection(
    *,
    name: str,
    model: type[models.Model],
    key_field: str,
    key: Callable[[Envelope], Hashable | None],
    handlers: Mapping[str, RowHandler],
    scope: Mapping[str, Any] | None = None,
    operational: tuple[str, ...] = (),
    title: str = "",
) -> Projection:
    """A read model with one row per key, written a batch at a time in two statements.

    `key(envelope)` names the row an event is about (None: not this projection's business).
    `handlers[type](row, envelope)` gets that row as a dict (None if there is none yet) and
    returns it changed, or None to leave it alone. Rows are loaded with one SELECT, folded in
    memory in log order, and written back with one INSERT ... ON CONFLICT DO UPDATE.
    """
    scope = dict(scope or {})
    fields = [f for f in model._meta.concrete_fields if not (f.primary_key and f.name != key_field)]
    projected = [f.name for f in fields if f.name not in operational]
    updated = [f for f in projected if f != key_field and f not in scope]
    unique = [*scope, key_field]

    def apply(batch: Batch) -> None:
        target = batch.model(model)
        keyed = [(key(e), e) for e in batch.events]
        keys = {k for k, _ in keyed if k is not None}
        if not keys:
            return
        rows: dict[Any, Row] = {
            r[key_field]: r
            for r in target.objects.filter(**scope, **{f"{key_field}__in": keys}).values(*projected)
        }
        touched: set[Any] = set()
        for k, envelope in keyed:
            if k is None:
                continue
            handler = handlers.get(envelope.type)
            changed = handler(rows.get(k), envelope) if handler else None
            if changed is not None:
                rows[k] = {**changed, **scope, key_field: k}
                touched.add(k)
        if touched:
            _upsert(target, [rows[k] for k in touched], unique=unique, updated=updated, fresh=operational)

    return Projection(
        name=name,
        title=title,
        handles=tuple(handlers),
        apply=apply,
        tables=(Table(model=model, key=tuple(unique), scope=scope, operational=operational),),
    )


def _upsert(
    model: type[models.Model],
    rows: list[Row],
    *,
    unique: list[str],
    updated: list[str],
    fresh: tuple[str, ...],
) -> None:
    """INSERT ... ON CONFLICT (unique) DO UPDATE SET (updated) for all rows, in one statement.

    On PostgreSQL the values travel as one array per column (unnest), which keeps a batch of a
    thousand rows to a handful of parameters; Django's bulk_create spends more time preparing
    values than the database spends writing them. Columns in `fresh` (operational state such as
    claims) get their defaults on insert and are never overwritten.
    """
    meta = model._meta
    fields = [meta.get_field(name) for name in rows[0]]
    fields += [f for f in meta.concrete_fields if f.name in fresh and not f.primary_key]
    q = connection.ops.quote_name
    columns = ", ".join(q(f.column) for f in fields)
    conflict = ", ".join(q(meta.get_field(n).column) for n in unique)
    sets = ", ".join(
        f"{q(meta.get_field(n).column)} = excluded.{q(meta.get_field(n).column)}" for n in updated
    )
    postgresql = connection.vendor == "postgresql"
    values = []
    for f in fields:
        convert = _converter(f, postgresql)
        default = f.get_default() if any(f.name not in row for row in rows) else None
        values.append([convert(row.get(f.name, default)) for row in rows])
    table = q(meta.db_table)
    with connection.cursor() as cursor:
        if postgresql:
            # Unbounded varchar: an explicit cast to varchar(n) would truncate silently, while the
            # INSERT's own assignment cast refuses a value that is too long.
            arrays = ", ".join(f"%b::{_VARCHAR_N.sub('varchar', f.db_type(connection))}[]" for f in fields)
            sql = f"INSERT INTO {table} ({columns}) SELECT * FROM unnest({arrays}) ON CONFLICT ({conflict}) DO UPDATE SET {sets}"
            execute_binary(sql, values)
        else:
            placeholders = ", ".join(["%s"] * len(fields))
            cursor.executemany(
                f"INSERT INTO {table} ({columns}) VALUES ({placeholders}) "
                f"ON CONFLICT ({conflict}) DO UPDATE SET {sets}",
                list(zip(*values, strict=True)),
            )


_VARCHAR_N = re.compile(r"^varchar\(\d+\)$")


def _converter(field: models.Field, postgresql: bool) -> Callable[[Any], Any]:
    """A function turning a row value into what the driver takes, chosen once per column."""
    if isinstance(field, models.JSONField):
        return Jsonb if postgresql else json.dumps
    if postgresql:
        return lambda v: v.value if isinstance(v, enum.Enum) else v
    return lambda v: field.get_db_prep_save(v.value if isinstance(v, enum.Enum) else v, connection)


# --- catch-up ------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CatchUpResult:
    name: str
    applied: int
    position: int
    error: str = ""
    skipped: int = 0


def _checkpoint_locked(name: str) -> ProjectionCheckpoint:
    # Blocks while another catch-up of this projection holds the row, then sees its checkpoint.
    checkpoint = ProjectionCheckpoint.objects.select_for_update().filter(name=name).first()
    if checkpoint is None:
        ProjectionCheckpoint.objects.bulk_create([ProjectionCheckpoint(name=name)], ignore_conflicts=True)
        checkpoint = ProjectionCheckpoint.objects.select_for_update().get(name=name)
    return checkpoint


def skipped_positions(*, name: str) -> set[int]:
    """Positions the operators told projection `name` to pass over, from their events in the log
    (the truth a replay starts from; live catch-ups read the checkpoint's copy)."""
    return {
        e.event.position
        for e in log_read(types=[ProjectionEventSkipped.event_type], limit=1_000_000)
        if e.event.projection == name
    }


class _Halt(Exception):
    """The event at `recorded` cannot be applied; those before it (`applied` of them, up to
    `before`) were."""

    def __init__(self, recorded: RecordedEvent, error: Exception) -> None:
        self.recorded = recorded
        self.error = error
        self.before = LogKey()
        self.applied = 0


def _decode(events: Iterable[RecordedEvent]) -> Iterable[Envelope]:
    for recorded in events:
        try:
            yield Envelope(event=recorded.event, recorded=recorded)
        except InvalidEvent as exc:
            raise _Halt(recorded, exc) from None


# Errors of the database's state, not of the events (Django's and psycopg's own, from raw cursors).
OPERATIONAL_ERRORS = (OperationalError, psycopg.OperationalError)


def _apply_events(projection: Projection, events: list[RecordedEvent], models_: Mapping) -> None:
    """Apply in one savepoint; if anything fails, find the first bad event (keeping those before
    it, each applied alone) and raise _Halt for it."""
    envelopes: list[Envelope] = []
    unreadable: _Halt | None = None
    try:
        envelopes.extend(_decode(events))
    except _Halt as halt:
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
                raise _Halt(envelope.recorded, exc) from exc
        # Every event alone is fine, the batch is not (a bug in `apply`): undo, halt at its start.
        transaction.savepoint_rollback(singles)
        raise _Halt(envelopes[0].recorded, batch_error) from batch_error
    if unreadable:
        raise unreadable


@dataclasses.dataclass
class _Progress:
    key: LogKey
    applied: int = 0
    skipped: int = 0
    done: bool = False


def _apply_batch(
    projection: Projection,
    key: LogKey,
    batch_size: int,
    skips: set[int],
    models_: Mapping = {},
) -> _Progress:
    """Apply the next batch after `key`. Raises _Halt with the events before the bad one applied."""
    events, last, scanned = log_scan(after=key, limit=batch_size, types=projection.types)
    if last is None:
        return _Progress(key, done=True)
    wanted = [e for e in events if e.position not in skips]
    progress = _Progress(last, skipped=len(events) - len(wanted), done=scanned < batch_size)
    try:
        _apply_events(projection, wanted, models_)
    except _Halt as halt:
        good = [e for e in wanted if (e.tx_id, e.position) < (halt.recorded.tx_id, halt.recorded.position)]
        halt.before = LogKey(good[-1].tx_id, good[-1].position) if good else key
        halt.applied = len(good)
        raise
    progress.applied = len(wanted)
    return progress


def _record_halt(checkpoint: ProjectionCheckpoint, halt: _Halt) -> None:
    checkpoint.tx_id, checkpoint.position = halt.before.tx_id, halt.before.position
    checkpoint.error_position = halt.recorded.position
    checkpoint.error_type = halt.recorded.type
    checkpoint.error_message = f"{type(halt.error).__name__}: {halt.error}"[:2000]
    checkpoint.error_count += 1
    checkpoint.error_at = timezone.now()
    checkpoint.save()


def _clear_error(checkpoint: ProjectionCheckpoint) -> None:
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
            checkpoint = _checkpoint_locked(name)
            key = LogKey(checkpoint.tx_id, checkpoint.position)
            try:
                step = _apply_batch(projection, key, batch_size, set(checkpoint.skipped))
            except _Halt as halt:
                _record_halt(checkpoint, halt)
                applied += halt.applied
                return CatchUpResult(name, applied, checkpoint.position, checkpoint.error_message, skipped)
            if step.key != key or checkpoint.error_position is not None:
                checkpoint.tx_id, checkpoint.position = step.key.tx_id, step.key.position
                _clear_error(checkpoint)
                checkpoint.save()  # an idle catch-up writes nothing
        applied, skipped = applied + step.applied, skipped + step.skipped
        if progress:
            progress(checkpoint.position)
        if step.done or step.key == key:
            return CatchUpResult(name, applied, checkpoint.position, "", skipped)


def projections_catch_up(*, batch_size: int = 2000) -> list[CatchUpResult]:
    return [projection_catch_up(name=n, batch_size=batch_size) for n in registry.names()]


# --- status --------------------------------------------------------------------------------------------


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
    skipped: int = 0
    """Events an operator told this projection to pass over (ProjectionEventSkipped)."""
    held_back_seconds: float | None = None
    """Age of the oldest running write transaction, which readers cannot read past (PostgreSQL)."""
    held_back_pid: int | None = None

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def projection_status(*, name: str | None = None) -> list[ProjectionStatus]:
    names = [registry.get(name).name] if name else registry.names()
    head = log_head()
    rows = ProjectionCheckpoint.objects.in_bulk(names)
    held = log_held_back()
    # Reported past a threshold: a transaction open for a few milliseconds is normal traffic.
    threshold = getattr(settings, "EVENTSTORE_HELD_BACK_AFTER_SECONDS", 5.0)
    held_seconds, held_pid = held if held and held[0] >= threshold else (None, None)
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
                skipped=len(cp.skipped),
                held_back_seconds=round(held_seconds, 1) if held_seconds is not None else None,
                held_back_pid=held_pid,
            )
        )
    return result


def halted_correlations() -> set[str]:
    """The business cases (correlation ids) of the events projections are halted on: automations
    leave them alone until the projections move on, so an order whose OrderPlaced cannot be read
    is never charged. One query."""
    halted_at = ProjectionCheckpoint.objects.filter(error_position__isnull=False).values("error_position")
    return set(
        Event.objects.filter(position__in=halted_at)
        .exclude(correlation_id="")
        .values_list("correlation_id", flat=True)
    )


def unregistered_events() -> dict[str, int]:
    """Events in the log whose type no installed app registers, counted by type. They are never
    applied by any projection, so they are reported instead of ignored, until an operator
    acknowledges the type (eventstore/unknown_types.py)."""
    known = set(registered_types())
    if connection.vendor == "postgresql":
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
            types = {r[0] for r in cursor.fetchall()}
    else:
        # order_by(): the model's ordering would make DISTINCT run over (type, position).
        types = set(Event.objects.order_by().values_list("type", flat=True).distinct())
    from eventstore.unknown_types import acknowledged_types  # builds on this module

    unknown = sorted(types - known)
    if unknown:  # only then: a healthy log costs no extra query
        unknown = sorted(set(unknown) - acknowledged_types())
    if not unknown:
        return {}
    counts = Event.objects.filter(type__in=unknown).values_list("type").annotate(n=models.Count("pk"))
    return dict(counts)


# --- the way past a poison event ------------------------------------------------------------------------


class SkipRefused(ValueError):
    """projection_skip was refused; the message says why. Nothing was appended."""


def projection_skip(
    *, name: str, position: int, reason: str, actor: str, force: bool = False
) -> CatchUpResult:
    """Record that projection `name` passes over the event at `position`, then catch it up.

    Refused unless the projection is halted at that event (or `force`), so an operator skips
    only what actually stopped it. The skip is an event, so a replay repeats it.
    """
    projection = registry.get(name)
    reason = reason.strip()
    if not reason:
        raise SkipRefused("a reason is required: it stays in the log beside the skip")
    target = Event.objects.filter(position=position).first()
    if target is None:
        raise SkipRefused(f"there is no event at position {position}")
    if target.type not in projection.handles:
        raise SkipRefused(f"{name} does not handle {target.type} events (position {position})")
    with transaction.atomic():
        checkpoint = _checkpoint_locked(name)
        if position in checkpoint.skipped:
            raise SkipRefused(f"{name} already skips position {position}")
        halted_at = checkpoint.error_position
        if halted_at != position and not force:
            state = f"halted at position {halted_at}" if halted_at else "not halted"
            raise SkipRefused(f"{name} is {state}, not at position {position}; use --force to skip it anyway")
        event_append(
            stream_id=f"projection-{name}",
            events=[ProjectionEventSkipped(projection=name, position=position, reason=reason)],
            expected_version=None,
            correlation_id=target.correlation_id,
            causation_id=str(position),
            actor=actor,
        )
        # The checkpoint's copy of the log's skips, so a catch-up needs no extra query.
        checkpoint.skipped = sorted({*checkpoint.skipped, position})
        checkpoint.save(update_fields=["skipped"])
    return projection_catch_up(name=name)


def projection_replay(*, name: str, batch_size: int = 5000, progress: Callable[[int], None] | None = None):
    """Rebuild a projection without downtime; see eventstore/replay.py (imported late: it builds
    on this module)."""
    from eventstore.replay import projection_replay as replay

    return replay(name=name, batch_size=batch_size, progress=progress)

"""Rebuilding a projection from position 0 without downtime (blue/green, as Marten does it).

The rebuild writes into shadow copies of the projection's tables, in ordinary short batch
transactions, while the live projection keeps serving and catching up. When the shadow is near
the head, one short transaction locks the live checkpoint, catches the shadow up to the head,
copies it over the live rows and moves the checkpoint. Columns the log does not hold (a TODO
item's claim) stay on the live rows, so a rebuild never touches a worker's lease.

The shadow parks business cases as a catch-up does (eventstore/catchup.py), in memory, and the
swap puts its parked events in place of the live projection's: the same log parks the same cases,
and a case an operator skipped is passed the same way (the skip is an event).

Memory stays flat whatever the log size: a batch at a time (and the parked events). Replay only runs `apply`, which
writes read models: it never calls a gateway or appends events.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
from collections.abc import Callable, Iterator
from typing import Any

from django.apps.registry import Apps
from django.db import connection, models, transaction

from eventstore.backends import backend
from eventstore.backends.base import column, model_field
from eventstore.catchup import (
    CatchUpResult,
    ProjectionHalted,
    apply_batch,
    case_apply,
    checkpoint_locked,
    clear_error,
    skipped_positions,
)
from eventstore.models import ProjectionCheckpoint
from eventstore.parked import Parking, error_text, parked_rows_replace
from eventstore.projection import Projection, Table, registry
from eventstore.record import LogKey


class ReplayRefused(RuntimeError):
    pass


def shadow_model(model: type[models.Model], projection: str) -> type[models.Model]:
    """A model class with the same columns and unique constraints as `model`, on a shadow table of
    this projection's own (lists share TodoItem, so two lists' rebuilds must not share a shadow),
    registered in a private app registry so Django's own registry never sees it."""
    meta = model._meta
    suffix = hashlib.sha1(projection.encode()).hexdigest()[:8]
    attrs: dict[str, Any] = {"__module__": model.__module__}
    for field in meta.local_concrete_fields:
        attrs[field.name] = field.clone()
    constraints = [
        models.UniqueConstraint(fields=c.fields, name=f"{c.name[:50]}_rb{suffix}")
        for c in meta.constraints
        if isinstance(c, models.UniqueConstraint) and c.fields and c.condition is None
    ]
    attrs["Meta"] = type(
        "Meta",
        (),
        {
            "app_label": meta.app_label,
            "db_table": f"{meta.db_table[:45]}__rebuild_{suffix}",
            "apps": Apps(),
            "constraints": constraints,
        },
    )
    return type(f"{model.__name__}Rebuild", (models.Model,), attrs)


def shadow_drop(shadow: type[models.Model]) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {connection.ops.quote_name(shadow._meta.db_table)}")


def shadow_create(shadow: type[models.Model]) -> None:
    # table_sql rather than create_model: no secondary indexes while building (faster), and it
    # works inside a transaction on SQLite too.
    shadow_drop(shadow)
    sql, params = connection.schema_editor().table_sql(shadow)
    with connection.cursor() as cursor:
        cursor.execute(backend().shadow_table_sql(sql), params)


def table_columns(table: Table, include_key: bool = True) -> list[str]:
    meta = table.model._meta
    names = []
    for field in meta.concrete_fields:
        if field.name in table.operational:
            continue
        if field.primary_key and field.name not in table.key:
            continue  # a surrogate id: the live table keeps its own
        if not include_key and field.name in table.key:
            continue
        names.append(column(field))
    return names


def _swap(table: Table, shadow: type[models.Model]) -> None:
    """Make the live rows of this projection equal to the shadow's, in the current transaction."""
    q = connection.ops.quote_name
    live, rebuilt = q(table.model._meta.db_table), q(shadow._meta.db_table)
    scope_sql = " AND ".join(f"{live}.{q(c)} = %s" for c in table.scope) or "TRUE"
    scope_params = list(table.scope.values())
    columns = ", ".join(q(c) for c in table_columns(table))
    with connection.cursor() as cursor:
        # Only this projection's rows travel, even if the shadow held others.
        shadow_scope = " AND ".join(f"{q(c)} = %s" for c in table.scope) or "TRUE"
        if not table.key:
            cursor.execute(f"DELETE FROM {live} WHERE {scope_sql}", scope_params)
            cursor.execute(
                f"INSERT INTO {live} ({columns}) SELECT {columns} FROM {rebuilt} WHERE {shadow_scope}",
                scope_params,
            )
            return
        keys = [column(model_field(table.model, k)) for k in table.key]
        updates = ", ".join(f"{q(c)} = excluded.{q(c)}" for c in table_columns(table, include_key=False))
        # A new row starts with the operational columns' defaults; an existing row keeps its own.
        operational = [
            f for f in table.model._meta.concrete_fields if f.name in table.operational and not f.primary_key
        ]
        fresh = "".join(f", {q(column(f))}" for f in operational)
        defaults = "".join(", %s" for _ in operational)
        # (The WHERE also keeps SQLite's parser apart from ON CONFLICT.)
        cursor.execute(
            f"INSERT INTO {live} ({columns}{fresh}) SELECT {columns}{defaults} FROM {rebuilt} "
            f"WHERE {shadow_scope} ON CONFLICT ({', '.join(q(k) for k in keys)}) DO UPDATE SET {updates}",
            [*(f.get_db_prep_save(f.get_default(), connection) for f in operational), *scope_params],
        )
        matches = " AND ".join(f"r.{q(k)} = {live}.{q(k)}" for k in keys)
        cursor.execute(
            f"DELETE FROM {live} WHERE {scope_sql} AND NOT EXISTS (SELECT 1 FROM {rebuilt} r WHERE {matches})",
            scope_params,
        )


@contextlib.contextmanager
def _one_rebuild_at_a_time(name: str) -> Iterator[None]:
    with backend().rebuild_lock(name) as locked:
        if not locked:
            raise ReplayRefused(f"{name} is being rebuilt by another process; try again when it is done")
        yield


@dataclasses.dataclass
class Shadow:
    projection: Projection
    models: dict[type[models.Model], type[models.Model]]
    skips: set[int]
    batch_size: int
    key: LogKey = dataclasses.field(default_factory=LogKey)
    applied: int = 0
    parked: list[Parking] = dataclasses.field(default_factory=list)
    cases: set[str] = dataclasses.field(default_factory=set)
    """The business cases the rebuild parked."""

    def step(self) -> bool:
        """Apply one batch to the shadow tables; True when the head is reached."""
        progress = apply_batch(
            self.projection, self.key, self.batch_size, self.skips, self.models, self.cases
        )
        self.key, self.applied = progress.key, self.applied + progress.applied
        self.parked += progress.parked
        self.cases |= {p.case for p in progress.parked}
        return progress.done

    def resume_skipped(self) -> None:
        """A case whose first parked event an operator skipped while the shadow was built: apply
        what queued behind it, as the skip did on the live projection."""
        for case in {p.case for p in self.parked if p.recorded.position in self.skips}:
            mine = [p for p in self.parked if p.case == case]
            handled, error = case_apply(self.projection, [p.recorded for p in mine], self.skips, self.models)
            rest = mine[handled:]
            if error is not None:
                rest[0] = Parking(rest[0].recorded, error_text(error))
            else:
                self.cases.discard(case)
            self.parked = [p for p in self.parked if p.case != case] + rest


def _swap_in(shadow: Shadow, before_swap: Callable[[Shadow, ProjectionCheckpoint], None] | None) -> None:
    """One short transaction under the live checkpoint's lock: catch the shadow up to the head,
    then put its rows in place of the live ones."""
    projection = shadow.projection
    with transaction.atomic():
        checkpoint = checkpoint_locked(projection.name)  # the live catch-ups wait from here
        shadow.skips |= set(checkpoint.skipped)  # recorded while the shadow was built
        while not shadow.step():
            pass
        shadow.resume_skipped()
        if before_swap:
            before_swap(shadow, checkpoint)
        for table in projection.tables:
            _swap(table, shadow.models[table.model])
        checkpoint.tx_id, checkpoint.position = shadow.key.tx_id, shadow.key.position
        checkpoint.skipped = sorted(shadow.skips)
        parked_rows_replace(
            checkpoint=checkpoint, parkings=sorted(shadow.parked, key=lambda p: p.recorded.key)
        )
        clear_error(checkpoint)
        checkpoint.save()


def projection_replay(
    *,
    name: str,
    batch_size: int = 5000,
    progress: Callable[[int], None] | None = None,
    before_swap: Callable[[Shadow, ProjectionCheckpoint], None] | None = None,
) -> CatchUpResult:
    """Rebuild one projection from position 0 into shadow tables, then swap them in.

    If an event cannot be applied (and no operator skip covers it), the rebuild stops, the shadow
    is dropped, and the live projection stays as it was; the result names the event.
    `before_swap(shadow, checkpoint)` runs under the live checkpoint's lock once the shadow is at
    the head (eventstore/shadow_diff.py compares there); raising in it leaves the live unchanged.
    """
    projection = registry.get(name)
    if not projection.tables:
        # Without its tables the rebuild would apply the whole log again on top of the live rows.
        raise ReplayRefused(f"{name} declares no tables, so it cannot be rebuilt in a shadow")
    shadow = Shadow(
        projection=projection,
        models={t.model: shadow_model(t.model, name) for t in projection.tables},
        skips=skipped_positions(name=name),
        batch_size=batch_size,
    )
    with _one_rebuild_at_a_time(name):
        try:
            for model in shadow.models.values():
                shadow_create(model)
            done = False
            while not done:
                with transaction.atomic():  # short transactions: readers and writers keep going
                    done = shadow.step()
                if progress:
                    progress(shadow.key.position)
            _swap_in(shadow, before_swap)
        except ProjectionHalted as halt:
            error = f"replay stopped at position {halt.recorded.position} ({halt.recorded.type}): "
            error += f"{type(halt.error).__name__}: {halt.error}"
            return CatchUpResult(name, 0, shadow.key.position, f"{error}; the live projection is unchanged")
        finally:
            for model in shadow.models.values():
                shadow_drop(model)
    if progress:
        progress(shadow.key.position)
    return CatchUpResult(name, shadow.applied, shadow.key.position, "", 0)

"""What a rebuild would change, seen before the swap.

A replay builds its shadow, then, under the live checkpoint's lock, catches the live rows up to
the same point of the log and compares the two, table by table: rows the rebuild adds, rows it
removes (by their keys), and rows whose projected columns differ (operational columns such as a
claim are not compared: the swap keeps them). `replay_projections --check` stops there and swaps
nothing; a plain replay refuses a rebuild that differs by more than
settings.EVENTSTORE_REPLAY_MAX_DIFFERENCES rows unless the operator accepts it, and records a swap
that changed anything as a `ProjectionRebuilt` event. A handler that reads the clock, or a fix that
reopens 300 items, is seen here instead of in production.

The comparison runs in SQL (NOT EXISTS both ways, one join for changed rows), so memory stays flat
whatever the table's size: only the first `SAMPLE` differences of each kind are kept.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import connection, models

from eventstore.backends import backend
from eventstore.backends.base import column, model_field
from eventstore.catchup import CatchUpResult, ProjectionHalted, apply_batch
from eventstore.events import ProjectionRebuilt
from eventstore.models import ProjectionCheckpoint
from eventstore.projection import Projection, Table, registry
from eventstore.record import LogKey
from eventstore.replay import Shadow, projection_replay, table_columns
from eventstore.store import event_append

SAMPLE = 20
"""Differences of each kind kept (and printed) per table; the counts are always complete."""

PARKED_CASES = "parked cases"
"""The name a difference in the parked business cases is shown under."""

# Rounds of "live to the head, shadow to the head" before comparing anyway (appends keep coming).
_LEVEL_ROUNDS = 20


@dataclasses.dataclass(frozen=True)
class RowDifference:
    kind: str  # "added", "removed" or "changed"
    table: str
    key: tuple[Any, ...]
    columns: tuple[str, ...] = ()
    """The changed columns (for "changed")."""

    def line(self) -> str:
        key = ", ".join(str(k) for k in self.key)
        changed = f" ({', '.join(self.columns)})" if self.columns else ""
        return f"{self.kind:<8} {self.table} [{key}]{changed}"


@dataclasses.dataclass(frozen=True)
class ShadowDiff:
    projection: str
    added: int = 0
    removed: int = 0
    changed: int = 0
    rows: tuple[RowDifference, ...] = ()
    """The first SAMPLE differences of each kind, per table."""

    @property
    def total(self) -> int:
        return self.added + self.removed + self.changed

    def summary(self) -> str:
        return f"{self.added} added, {self.removed} removed, {self.changed} changed"

    def lines(self) -> list[str]:
        shown = len(self.rows)
        more = [f"... and {self.total - shown} more"] if self.total > shown else []
        return [r.line() for r in self.rows] + more


@dataclasses.dataclass(frozen=True)
class CheckedReplay:
    """What a checked replay did: its result, the differences it found, and whether it swapped."""

    result: CatchUpResult
    diff: ShadowDiff | None = None
    swapped: bool = False
    refused: str = ""


class _Compared(Exception):
    """Leaves the replay's locked transaction without swapping (so it rolls back)."""

    def __init__(self, diff: ShadowDiff, refused: str = "") -> None:
        super().__init__(refused or "checked")
        self.diff = diff
        self.refused = refused


def shadow_diff(
    projection: Projection,
    shadow: dict[type[models.Model], type[models.Model]],
    parked: tuple[set[str], set[str]] = (set(), set()),
) -> ShadowDiff:
    """The differences between the live rows of `projection` and its rebuilt shadow tables, and
    between the business cases each parked (`parked`: the live ones, the rebuild's)."""
    live_cases, rebuilt_cases = parked
    gained, lost = sorted(rebuilt_cases - live_cases), sorted(live_cases - rebuilt_cases)
    added, removed, changed = len(gained), len(lost), 0
    rows = [RowDifference("added", PARKED_CASES, (c,)) for c in gained[:SAMPLE]]
    rows += [RowDifference("removed", PARKED_CASES, (c,)) for c in lost[:SAMPLE]]
    for table in projection.tables:
        for kind, keys in _table_differences(table, shadow[table.model]).items():
            count = 0
            for key, columns in keys:
                count += 1
                if count <= SAMPLE:
                    rows.append(RowDifference(kind, table.model._meta.db_table, key, columns))
            if kind == "added":
                added += count
            elif kind == "removed":
                removed += count
            else:
                changed += count
    return ShadowDiff(projection.name, added, removed, changed, tuple(rows))


# A differing row: its key, and the columns that differ (empty for an added or removed row).
Difference = tuple[tuple[Any, ...], tuple[str, ...]]


def _whole_row_differences(
    table: Table, live: str, shadow: str, scope: Callable[[str], str], params: list[Any]
) -> dict[str, list[Difference]]:
    """A table without a key: rows are compared whole, as sets."""
    columns = ", ".join(connection.ops.quote_name(c) for c in table_columns(table))
    return {
        "added": _keys(
            f"SELECT {columns} FROM {shadow} s WHERE {scope('s')} "
            f"EXCEPT SELECT {columns} FROM {live} l WHERE {scope('l')}",
            params,
        ),
        "removed": _keys(
            f"SELECT {columns} FROM {live} l WHERE {scope('l')} "
            f"EXCEPT SELECT {columns} FROM {shadow} s WHERE {scope('s')}",
            params,
        ),
    }


def _table_differences(table: Table, rebuilt: type[models.Model]) -> dict[str, list[Difference]]:
    q = connection.ops.quote_name
    meta = table.model._meta
    live, shadow = q(meta.db_table), q(rebuilt._meta.db_table)
    scope_columns = [column(model_field(table.model, c)) for c in table.scope]
    scope_params = list(table.scope.values())

    def scope(alias: str) -> str:
        return " AND ".join(f"{alias}.{q(c)} = %s" for c in scope_columns) or "1 = 1"

    both_scopes = [*scope_params, *scope_params]
    if not table.key:
        return _whole_row_differences(table, live, shadow, scope, both_scopes)
    keys = [column(model_field(table.model, k)) for k in table.key if k not in table.scope]
    key_list = ", ".join(q(k) for k in keys)
    same_key = " AND ".join(f"s.{q(k)} = l.{q(k)}" for k in keys)
    compared = table_columns(table, include_key=False)
    compared = [c for c in compared if c not in scope_columns]
    distinct = backend().distinct_from
    differ = " OR ".join(f"l.{q(c)} {distinct} s.{q(c)}" for c in compared) or "1 = 0"
    return {
        "added": _keys(
            f"SELECT {key_list} FROM {shadow} s WHERE {scope('s')} AND NOT EXISTS "
            f"(SELECT 1 FROM {live} l WHERE {scope('l')} AND {same_key}) ORDER BY {key_list}",
            both_scopes,
        ),
        "removed": _keys(
            f"SELECT {key_list} FROM {live} l WHERE {scope('l')} AND NOT EXISTS "
            f"(SELECT 1 FROM {shadow} s WHERE {scope('s')} AND {same_key}) ORDER BY {key_list}",
            both_scopes,
        ),
        "changed": _changed(
            f"SELECT {', '.join(f'l.{q(k)}' for k in keys)}, "
            f"{', '.join(f'l.{q(c)}' for c in compared)}, {', '.join(f's.{q(c)}' for c in compared)} "
            f"FROM {live} l JOIN {shadow} s ON {same_key} "
            f"WHERE {scope('l')} AND {scope('s')} AND ({differ}) ORDER BY {', '.join(f'l.{q(k)}' for k in keys)}",
            both_scopes,
            len(keys),
            compared,
        ),
    }


def _keys(sql: str, params: list[Any]) -> list[Difference]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [(tuple(row), ()) for row in cursor.fetchall()]


def _changed(sql: str, params: list[Any], n_keys: int, columns: list[str]) -> list[Difference]:
    n = len(columns)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        result: list[Difference] = []
        for row in cursor.fetchall():
            before, after = row[n_keys : n_keys + n], row[n_keys + n :]
            names = tuple(c for c, b, a in zip(columns, before, after, strict=True) if b != a)
            result.append((tuple(row[:n_keys]), names))
        return result


def _level(projection: Projection, shadow: Shadow, checkpoint: ProjectionCheckpoint) -> set[str]:
    """Catch the live rows up to the shadow's point of the log (in the replay's transaction, under
    the checkpoint's lock), so the two are compared after the same events; the live projection's
    parked cases then. A live projection that halts stays where it halted: what it lacks shows as
    differences. (The swap replaces the live parked events, so these parkings are not written.)"""
    key = LogKey(checkpoint.tx_id, checkpoint.position)
    cases = set(checkpoint.parked)
    for _ in range(_LEVEL_ROUNDS):
        try:
            while True:
                step = apply_batch(projection, key, shadow.batch_size, shadow.skips, parked=cases)
                key = step.key
                cases |= {p.case for p in step.parked}
                if step.done:
                    break
        except ProjectionHalted:
            return cases
        while not shadow.step():
            pass
        if shadow.key == key:
            break
    shadow.resume_skipped()
    return cases


def max_differences() -> int:
    return getattr(settings, "EVENTSTORE_REPLAY_MAX_DIFFERENCES", 10)


def _record_rebuild(diff: ShadowDiff, *, accepted: bool, actor: str) -> None:
    """A swap that changed rows is an operator's event: what it changed, and who swapped."""
    event_append(
        stream_id=f"projection-{diff.projection}",
        events=[
            ProjectionRebuilt(
                projection=diff.projection,
                added=diff.added,
                removed=diff.removed,
                changed=diff.changed,
                sample=[r.line() for r in diff.rows],
                accepted=accepted,
            )
        ],
        expected_version=None,
        actor=actor,
    )


def projection_replay_checked(
    *,
    name: str,
    check: bool = False,
    accept_differences: bool = False,
    actor: str = "manage.py replay_projections",
    batch_size: int = 5000,
    progress: Callable[[int], None] | None = None,
) -> CheckedReplay:
    """Rebuild `name` into its shadow and compare it with the live rows before the swap.

    `check`: compare only, never swap. Otherwise swap unless the rebuild differs by more than
    max_differences() rows and `accept_differences` is false; a swap that changes rows records a
    ProjectionRebuilt event (in the swap's transaction).
    """
    projection = registry.get(name)
    found: list[ShadowDiff] = []

    def compare(shadow: Shadow, checkpoint: ProjectionCheckpoint) -> None:
        live_cases = _level(projection, shadow, checkpoint)
        diff = shadow_diff(projection, shadow.models, (live_cases, shadow.cases))
        found.append(diff)
        if check:
            raise _Compared(diff)
        limit = max_differences()
        if diff.total > limit and not accept_differences:
            raise _Compared(
                diff,
                f"{name}: the rebuild differs from the live rows in {diff.total} rows ({diff.summary()}), "
                f"more than EVENTSTORE_REPLAY_MAX_DIFFERENCES={limit}; nothing was swapped. Look at "
                "them with --check, then pass --accept-differences to swap anyway",
            )
        if diff.total:
            _record_rebuild(diff, accepted=diff.total > limit, actor=actor)

    try:
        result = projection_replay(name=name, batch_size=batch_size, progress=progress, before_swap=compare)
    except _Compared as compared:
        position = ProjectionCheckpoint.objects.filter(name=name).values_list("position", flat=True).first()
        return CheckedReplay(
            CatchUpResult(name, 0, position or 0), compared.diff, swapped=False, refused=compared.refused
        )
    return CheckedReplay(result, found[0] if found else None, swapped=not result.error)

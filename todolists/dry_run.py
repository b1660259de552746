"""Trying a TODO list against today's log before it is deployed.

The list is declared in code but not registered: its projection folds the whole log into a
temporary copy of the TODO item table (one per connection, invisible to every other session),
inside a transaction that is rolled back at the end. Nothing reaches the live tables or the log,
and no automation runs: only the list's projection (which never calls its `work`) is applied.
"""

from __future__ import annotations

import dataclasses
import datetime
import importlib

from django.db import connection, models, transaction
from django.utils import timezone

from eventstore.catchup import ProjectionHalted, apply_batch
from eventstore.record import LogKey
from eventstore.replay import shadow_model
from todolists.lists import TodoList, _projection
from todolists.models import TodoItem

SAMPLE = 10
# The age buckets of open items, by their opening event's time.
AGES = (
    ("< 1 hour", datetime.timedelta(hours=1)),
    ("< 1 day", datetime.timedelta(days=1)),
    ("< 7 days", datetime.timedelta(days=7)),
)


class DryRunRefused(ValueError):
    """The list cannot be tried; the message says why. Nothing was written."""


@dataclasses.dataclass(frozen=True)
class DryRun:
    name: str
    title: str
    folded: int
    """Events the list's projection applied."""
    position: int
    """How far the log was read."""
    open: int
    due: int
    parked: int
    done: int
    by_age: dict[str, int]
    sample: list[str]
    """Keys of the oldest open items."""
    halted: str = ""
    """Where and why the fold stopped, if an event could not be applied."""
    parked_cases: int = 0
    """Business cases the fold would park (an event of theirs could not be applied)."""


def todo_list_load(*, path: str) -> TodoList:
    """The TodoList object at "package.module:attribute"."""
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise DryRunRefused(f"{path!r} is not of the form path.to.module:list_object")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise DryRunRefused(f"cannot import {module_name!r}: {exc}") from None
    todo = getattr(module, attribute, None)
    if todo is None:
        raise DryRunRefused(f"{module_name!r} has no attribute {attribute!r}")
    if not isinstance(todo, TodoList):
        raise DryRunRefused(f"{path!r} is a {type(todo).__name__}, not a TodoList")
    return todo


class _RolledBack(Exception):
    def __init__(self, result: DryRun) -> None:
        super().__init__(result.name)
        self.result = result


def todo_list_dry_run(*, todo: TodoList, batch_size: int = 5000) -> DryRun:
    """What `todo` would hold if it were registered now: the log folded through its projection
    into a temporary table, read, and rolled back."""
    projection = _projection(todo)
    # A scratch copy of every table the list writes (its items and its rollup), so nothing live
    # is written, not even inside the transaction that is rolled back.
    scratches = {t.model: shadow_model(t.model, f"dry-run:{todo.name}") for t in projection.tables}
    scratch = scratches[TodoItem]
    try:
        with transaction.atomic():
            for model in scratches.values():
                _create_temporary(model)
            key, folded, halted, cases = LogKey(), 0, "", set[str]()
            try:
                while True:
                    step = apply_batch(projection, key, batch_size, set(), scratches, cases)
                    key, folded = step.key, folded + step.applied
                    cases |= {p.case for p in step.parked}  # counted, never written
                    if step.done:
                        break
            except ProjectionHalted as halt:
                folded += halt.applied
                key = halt.before
                halted = (
                    f"would halt at position {halt.recorded.position} ({halt.recorded.type}): "
                    f"{type(halt.error).__name__}: {halt.error}"
                )
            raise _RolledBack(
                dataclasses.replace(
                    _read(todo, scratch, folded, key.position, halted), parked_cases=len(cases)
                )
            )
    except _RolledBack as done:
        return done.result


def _create_temporary(model: type[models.Model]) -> None:
    sql, params = connection.schema_editor().table_sql(model)
    with connection.cursor() as cursor:
        cursor.execute(sql.replace("CREATE TABLE", "CREATE TEMPORARY TABLE", 1), params)


def _read(todo: TodoList, scratch: type[models.Model], folded: int, position: int, halted: str) -> DryRun:
    rows = scratch._default_manager.filter(list_name=todo.name)
    now = timezone.now()
    counts = rows.aggregate(
        open=models.Count("pk", filter=models.Q(status=TodoItem.Status.OPEN)),
        due=models.Count("pk", filter=TodoItem.due()),
        parked=models.Count("pk", filter=models.Q(status=TodoItem.Status.PARKED)),
        done=models.Count("pk", filter=models.Q(status=TodoItem.Status.DONE)),
        **{
            f"age{i}": models.Count(
                "pk", filter=~models.Q(status=TodoItem.Status.DONE) & models.Q(opened_at__gt=now - age)
            )
            for i, (_, age) in enumerate(AGES)
        },
    )
    waiting = counts["open"] + counts["parked"]
    by_age, younger = {}, 0
    for i, (label, _) in enumerate(AGES):
        by_age[label] = counts[f"age{i}"] - younger
        younger = counts[f"age{i}"]
    by_age[f"older than {AGES[-1][0][2:]}"] = waiting - younger
    sample = list(
        rows.exclude(status=TodoItem.Status.DONE)
        .order_by("opened_position")
        .values_list("key", flat=True)[:SAMPLE]
    )
    return DryRun(
        name=todo.name,
        title=todo.title,
        folded=folded,
        position=position,
        open=counts["open"],
        due=counts["due"],
        parked=counts["parked"],
        done=counts["done"],
        by_age=by_age,
        sample=sample,
        halted=halted,
    )

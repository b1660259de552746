"""Restore from backup, proven: pg_dump of a live database holding every kind of event, restored
into a fresh database, replayed there, gives every list, read model and checkpoint as it was."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from eventstore.events import registered_types
from eventstore.models import Event
from eventstore.parked_cases import parked_case_skip
from eventstore.projections import projection_skip, projections_catch_up
from eventstore.projections import registry as projections
from eventstore.unknown_types import event_type_acknowledge
from orders.models import Order
from tests.conftest import database_url_for_subprocess, requires_postgres
from todolists.models import TodoItem
from todolists.operator import todo_item_retry
from todolists.pause import todo_list_pause, todo_list_resume

ROOT = Path(__file__).resolve().parent.parent
# The rows a replay rebuilds, without operational columns (claims, surrogate ids, update times).
STATE = {
    "orders": "SELECT * FROM orders_order ORDER BY order_id",
    "payments": "SELECT * FROM payments_payment ORDER BY 1",
    "todo": "SELECT list_name, key, correlation_id, status, payload, opened_at, opened_position, opened_by, "
    "closed_at, closed_position, closed_by, attempts, last_error, next_attempt_at, parked_at, parked_reason "
    "FROM todolists_todoitem ORDER BY list_name, key",
    "checkpoints": "SELECT name, position, tx_id, error_position, error_type, error_message, error_count, "
    "skipped, parked FROM eventstore_projectioncheckpoint WHERE name <> 'test_applied' ORDER BY name",
    "parked": "SELECT projection, position, correlation_id, type, error FROM eventstore_parkedevent ORDER BY 1, 2",
    "log": "SELECT count(*), max(position), max(tx_id) FROM eventstore_event",
    "rollup": "SELECT list_name, period, at, measure, n FROM todolists_todolistrollup ORDER BY 1, 2, 3, 4",
}
PROJECTION_TABLES = (
    "orders_order, payments_payment, todolists_todoitem, todolists_todolistrollup,"
    " eventstore_projectioncheckpoint, eventstore_parkedevent"
)


def _state(dsn: str) -> dict:
    with psycopg.connect(dsn) as conn:
        return {name: conn.execute(sql).fetchall() for name, sql in STATE.items()}


def _dsn(name: str) -> str:
    s = connection.settings_dict
    return f"host={s['HOST'] or '127.0.0.1'} port={s['PORT'] or 5432} user={s['USER']} dbname={name}"


def _manage(database: str, *args: str) -> subprocess.CompletedProcess:
    url = database_url_for_subprocess().rsplit("/", 1)[0] + f"/{database}"
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=300,
    )


def _every_kind_of_event(seeded: dict[str, str]) -> None:
    """On top of the seeded process (placed, started, issued, failed, confirmed, cancelled, attempt
    failed, parked): an operator retry, a skip, a rebuild that changed a row, and an acknowledged
    event of a type no app registers, a list paused and resumed, and one left paused."""
    todo_item_retry(item=TodoItem.objects.get(key=seeded["parked"]), actor="ops")
    todo_list_pause(list_name="orders_to_cancel", reason="gateway incident", actor="ops")
    todo_list_resume(list_name="orders_to_cancel", reason="resolved", actor="ops")
    todo_list_pause(list_name="orders_to_confirm", reason="still paused in the dump", actor="ops")
    # Two poison events (written past the append's checks, without their amount): one of a business
    # case, parked and passed by an operator's skip of the case; one with no case, which halts the
    # projections that read it, passed by a skip in each. A rebuild from the restored log must pass
    # both the same way.
    parked, halting = (
        Event.objects.create(
            stream_id=f"order-{order_id}",
            stream_version=1,
            type="OrderPlaced",
            data={"order_id": order_id},
            correlation_id=case,
            recorded_at=timezone.now(),
        )
        for order_id, case in (("poison", "poison"), ("poison-2", ""))
    )
    projections_catch_up()
    parked_case_skip(correlation_id=parked.correlation_id, reason="no amount", actor="ops")
    for projection in projections.all():
        if "OrderPlaced" in projection.types:
            projection_skip(
                name=projection.name, position=halting.position, reason="no amount", actor="ops", force=True
            )
    Order.objects.filter(order_id=seeded["confirmed"]).update(customer="tampered")
    call_command("replay_projections", "orders")  # puts it right, and records the rebuild
    Event.objects.create(
        stream_id="legacy", stream_version=1, type="LegacyThing", data={}, recorded_at=timezone.now()
    )
    event_type_acknowledge(type_name="LegacyThing", reason="retired", actor="ops")
    projections_catch_up()
    production = {t for t in registered_types() if t not in ("TestThingHappened", "ReceiptSent")}
    assert set(Event.objects.values_list("type", flat=True)) >= production


@requires_postgres("pg_dump and pg_restore are PostgreSQL's")
@pytest.mark.django_db(transaction=True)
def test_a_restored_dump_replays_to_the_same_lists_read_models_and_checkpoints(seeded_process, settings):
    assert shutil.which("pg_dump") and shutil.which("pg_restore"), "the PostgreSQL client tools are needed"
    settings.TODO_NUDGE = False
    _every_kind_of_event(seeded_process)
    live = connection.settings_dict["NAME"]
    original = _state(_dsn(live))
    assert original["orders"] and original["todo"] and original["checkpoints"]

    restored = f"{live}_restored"
    with psycopg.connect(_dsn("postgres"), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{restored}"')
        admin.execute(f'CREATE DATABASE "{restored}"')
    try:
        dump = subprocess.run(
            ["pg_dump", "--format=custom", _dsn(live)], capture_output=True, timeout=120, check=True
        ).stdout
        subprocess.run(
            ["pg_restore", "--no-owner", "--exit-on-error", f"--dbname={_dsn(restored)}"],
            input=dump,
            capture_output=True,
            timeout=120,
            check=True,
        )

        # The restored projections are what the restored log rebuilds.
        check = _manage(restored, "replay_projections", "--check")
        assert check.returncode == 0, check.stdout + check.stderr
        replay = _manage(restored, "replay_projections")
        assert replay.returncode == 0, replay.stdout + replay.stderr
        assert _state(_dsn(restored)) == original

        # From the log alone: every projection and checkpoint emptied, then rebuilt (the replay
        # catches the live rows up before comparing, so nothing differs and nothing is recorded).
        with psycopg.connect(_dsn(restored), autocommit=True) as conn:
            conn.execute(f"TRUNCATE {PROJECTION_TABLES}")
        replay = _manage(restored, "replay_projections")
        assert replay.returncode == 0, replay.stdout + replay.stderr
        assert _state(_dsn(restored)) == original
    finally:
        with psycopg.connect(_dsn("postgres"), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{restored}"')

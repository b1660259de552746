"""The log is append-only for the application's database role, whatever it sets or alters (PostgreSQL).

Real connections with psycopg as freshly created NOSUPERUSER roles; the end-to-end test migrates a
fresh database as a non-superuser owner role and runs the process as the application role.
"""

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from eventstore.models import Event
from eventstore.roles import app_role_grant
from eventstore.store import event_append
from tests.conftest import ThingHappened, requires_postgres

pytestmark = pytest.mark.django_db(transaction=True)
postgres_only = requires_postgres("database roles are PostgreSQL's")
ROOT = Path(__file__).resolve().parent.parent


def _admin(dbname: str = "postgres") -> psycopg.Connection:
    """An autocommit connection as the test suite's own (superuser) role."""
    return psycopg.connect(**_conninfo(dbname=dbname), autocommit=True)


def _conninfo(**overrides) -> dict:
    s = connection.settings_dict
    info = {
        "host": s["HOST"] or "127.0.0.1",
        "port": s["PORT"] or 5432,
        "user": s["USER"],
        "password": s["PASSWORD"] or None,
        "dbname": s["NAME"],
    }
    return info | overrides


def _url(info: dict) -> str:
    return f"postgres://{info['user']}@{info['host']}:{info['port']}/{info['dbname']}"


def _drop_role(admin: psycopg.Connection, role: str) -> None:
    admin.execute(
        f"DO $$ BEGIN IF EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN "
        f"EXECUTE 'DROP OWNED BY {role}'; EXECUTE 'DROP ROLE {role}'; END IF; END $$"
    )


@pytest.fixture
def app_role():
    """A fresh NOSUPERUSER login role, made the application role of the test database."""
    role = f"{connection.settings_dict['NAME']}_app"
    with _admin(connection.settings_dict["NAME"]) as admin:
        _drop_role(admin, role)
        admin.execute(f"CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEROLE NOCREATEDB")
        app_role_grant(role=role)
        yield _conninfo(user=role, password=None)
        _drop_role(admin, role)


@postgres_only
def test_the_app_role_adds_to_the_log_and_reads_it(app_role):
    event_append(stream_id="s-1", events=[ThingHappened(n=1)], expected_version=0)
    with psycopg.connect(**app_role) as app:
        app.execute(
            "INSERT INTO eventstore_event (stream_id, stream_version, type, schema_version, data,"
            " correlation_id, causation_id, actor, recorded_at)"
            " VALUES ('s-1', 2, 'TestThingHappened', 1, '{\"n\": 2}', '', '', 'app', now())"
        )
        rows = app.execute("SELECT stream_version, data FROM eventstore_event ORDER BY position").fetchall()
    assert rows == [(1, {"n": 1, "poison": False}), (2, {"n": 2})]


@postgres_only
@pytest.mark.parametrize(
    "statements",
    [
        ["UPDATE eventstore_event SET type = 'Edited'"],
        ["DELETE FROM eventstore_event"],
        ["TRUNCATE eventstore_event"],
        ["SET eventstore.allow_truncate = 'on'", "TRUNCATE eventstore_event"],
        ["SET session_replication_role = replica", "DELETE FROM eventstore_event"],
        ["ALTER TABLE eventstore_event DISABLE TRIGGER ALL", "DELETE FROM eventstore_event"],
        ["DROP TRIGGER eventstore_event_no_update_delete ON eventstore_event"],
        ["DROP TABLE eventstore_event"],
        ["GRANT UPDATE, DELETE ON eventstore_event TO PUBLIC", "DELETE FROM eventstore_event"],
    ],
    ids=lambda s: " ; ".join(s),
)
def test_the_app_role_cannot_change_the_log(app_role, statements):
    event_append(stream_id="s-1", events=[ThingHappened(n=1)], expected_version=0)
    # Refused by the role's rights, before the trigger (the owner's belt) is even reached.
    refused = pytest.raises(psycopg.errors.InsufficientPrivilege, match=r"permission denied|must be owner")
    with psycopg.connect(**app_role, autocommit=True) as app, refused:
        for statement in statements:
            app.execute(statement)
    assert list(Event.objects.values_list("stream_id", "type")) == [("s-1", "TestThingHappened")]


@postgres_only
def test_granting_refuses_roles_that_could_undo_it():
    role = f"{connection.settings_dict['NAME']}_maker"
    with pytest.raises(CommandError, match="superuser"):
        call_command("eventstore_grant_app_role", "--role", connection.settings_dict["USER"])
    with pytest.raises(CommandError, match="does not exist"):
        call_command("eventstore_grant_app_role", "--role", "no_such_role_here")
    with pytest.raises(CommandError, match="must be lower-case"):
        call_command("eventstore_grant_app_role", "--role", 'x"; DROP TABLE eventstore_event; --')
    with _admin(connection.settings_dict["NAME"]) as admin:
        _drop_role(admin, role)
        admin.execute(f"CREATE ROLE {role} LOGIN CREATEROLE")
        try:
            with pytest.raises(CommandError, match="can create roles"):
                call_command("eventstore_grant_app_role", "--role", role)
        finally:
            _drop_role(admin, role)


@pytest.fixture
def owned_database():
    """A fresh database owned by a fresh NOSUPERUSER owner role, and a fresh application role."""
    base = connection.settings_dict["NAME"]
    name, owner, app = f"{base}_owned", f"{base}_owner", f"{base}_app2"
    with _admin() as admin:

        def drop():
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            for role in (app, owner):
                admin.execute(f"DROP ROLE IF EXISTS {role}")

        drop()
        admin.execute(f"CREATE ROLE {owner} LOGIN NOSUPERUSER")
        admin.execute(f"CREATE ROLE {app} LOGIN NOSUPERUSER")
        admin.execute(f'CREATE DATABASE "{name}" OWNER {owner}')
        yield (
            _conninfo(dbname=name, user=owner, password=None),
            _conninfo(dbname=name, user=app, password=None),
        )
        drop()


def _manage(*args: str, **env: str) -> str:
    env = {**os.environ, "TODO_NUDGE": "false", **env}
    env.pop("REDIS_URL", None)
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"manage.py {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@postgres_only
def test_migrate_as_the_owner_then_run_the_process_as_the_app_role(owned_database, wait_until):
    owner, app = owned_database
    roles = {"DATABASE_URL": _url(app), "DATABASE_OWNER_URL": _url(owner)}
    _manage("migrate", "--database", "owner", "--verbosity", "0", **roles)
    _manage("eventstore_grant_app_role", "--role", app["user"], "--database", "owner", **roles)
    # The process, as the application role only.
    order_id = _manage(
        "place_order", "--amount", "12.50", "--currency", "EUR", DATABASE_URL=_url(app)
    ).strip()

    def confirmed() -> bool:
        # Readers wait for write transactions still running anywhere on the server: run again.
        _manage("process_todos", DATABASE_URL=_url(app))
        with psycopg.connect(**app) as conn:
            row = conn.execute("SELECT status FROM orders_order WHERE order_id = %s", [order_id]).fetchone()
        return row == ("confirmed",)

    wait_until(confirmed, timeout=120, message="the order to be paid and confirmed by the app role")
    # A replay, shadow tables and swap included, runs as the application role too.
    assert "todo:payments_to_issue: applied" in _manage("replay_projections", DATABASE_URL=_url(app))
    # A table a later migration creates is reachable by the app role (default privileges).
    with psycopg.connect(**owner, autocommit=True) as conn:
        conn.execute("CREATE TABLE later_migration (id bigint GENERATED BY DEFAULT AS IDENTITY, note text)")
    with psycopg.connect(**app, autocommit=True) as conn:
        conn.execute("INSERT INTO later_migration (note) VALUES ('reachable')")
        types = [r[0] for r in conn.execute("SELECT type FROM eventstore_event ORDER BY position")]
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied"):
            conn.execute("TRUNCATE eventstore_event")
    assert types == ["OrderPlaced", "PaymentStarted", "PaymentIssued", "OrderConfirmed"]
    # The owner's second belt: the trigger refuses it too, and the old hatch no longer opens it.
    with psycopg.connect(**owner, autocommit=True) as conn:
        conn.execute("SET eventstore.allow_truncate = 'on'")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            conn.execute("TRUNCATE eventstore_event")


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite only (PostgreSQL has roles)")
def test_on_sqlite_the_grant_command_says_there_are_no_roles():
    with pytest.raises(CommandError, match="SQLite has none"):
        call_command("eventstore_grant_app_role", "--role", "shop_app")

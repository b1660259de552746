"""The application's database role on PostgreSQL: it may add to the log and read it, nothing more.

The log's owner (the role `migrate` runs as) keeps every right on it; the application role gets
INSERT and SELECT on the log (and USAGE on its sequence), full DML on the read models, the TODO
lists and django-q2's tables, and the same on tables later migrations create (default privileges).
UPDATE, DELETE, TRUNCATE, ALTER TABLE (so DISABLE TRIGGER) and session_replication_role all need
rights the application role does not have, so no setting it can flip reopens the log.
"""

from __future__ import annotations

import re

from django.db import connections, transaction

from eventstore.backends import backend
from eventstore.models import Event

ROLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
# Django's bookkeeping: the application reads it (migrate --check), only the owner writes it.
READ_ONLY_TABLES = ("django_migrations",)


class AppRoleRefused(ValueError):
    """The role cannot be made the application role; the message says why. Nothing was granted."""


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def app_role_sql(*, role: str, schema: str, owner: str, sequence: str) -> list[str]:
    """The statements that make `role` the application role, run by `owner` (the migrating role)."""
    log = Event._meta.db_table
    role, schema, owner = _quote(role), _quote(schema), _quote(owner)
    dml = "SELECT, INSERT, UPDATE, DELETE"
    return [
        f"GRANT USAGE ON SCHEMA {schema} TO {role}",
        # A replay builds its shadow tables (<table>__rebuild) as this role, then drops them.
        f"GRANT CREATE ON SCHEMA {schema} TO {role}",
        f"GRANT {dml} ON ALL TABLES IN SCHEMA {schema} TO {role}",
        f"GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA {schema} TO {role}",
        # The log: add and read only.
        f"REVOKE ALL ON {log} FROM {role}",
        f"GRANT SELECT, INSERT ON {log} TO {role}",
        f"REVOKE ALL ON SEQUENCE {sequence} FROM {role}",
        f"GRANT USAGE ON SEQUENCE {sequence} TO {role}",
        *(f"REVOKE INSERT, UPDATE, DELETE ON {table} FROM {role}" for table in READ_ONLY_TABLES),
        # Tables and sequences the owner creates in later migrations are reachable too.
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA {schema} GRANT {dml} ON TABLES TO {role}",
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA {schema} "
        f"GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO {role}",
    ]


def app_role_grant(*, role: str, using: str = "default") -> list[str]:
    """Grant `role` the application's rights, connected as the log's owner; returns the SQL run.

    Refused for a role that could switch the protection off: a superuser, a role that can create
    roles (it could grant itself the owner's), or the owner or a member of it.
    """
    connection = connections[using]
    if not backend(using).has_roles:
        raise AppRoleRefused("database roles are PostgreSQL's; SQLite has none (see README)")
    if not ROLE_NAME.fullmatch(role):
        raise AppRoleRefused(f"role name {role!r} must be lower-case letters, digits and _ (at most 63)")
    with transaction.atomic(using=using), connection.cursor() as cursor:
        cursor.execute(
            "SELECT r.rolsuper, r.rolcreaterole, pg_has_role(r.oid, c.relowner, 'MEMBER'),"
            " pg_get_userbyid(c.relowner), current_schema(), pg_get_serial_sequence(%s, 'position')"
            " FROM pg_roles r, pg_class c WHERE r.rolname = %s AND c.oid = %s::regclass",
            [Event._meta.db_table, role, Event._meta.db_table],
        )
        row = cursor.fetchone()
        if row is None:
            raise AppRoleRefused(f"role {role!r} does not exist (CREATE ROLE {role} LOGIN PASSWORD '...')")
        superuser, createrole, owns_log, owner, schema, sequence = row
        if superuser or createrole:
            raise AppRoleRefused(
                f"role {role!r} is a superuser or can create roles: it could undo the grants"
            )
        if owns_log:
            raise AppRoleRefused(f"role {role!r} is the log's owner {owner!r} or a member of it")
        statements = app_role_sql(role=role, schema=schema, owner=owner, sequence=sequence)
        for statement in statements:
            cursor.execute(statement)
    return statements

"""`migrate` as Django's, but a role without the rights to migrate gets one line saying which role
must run it, not a traceback (the application role may not change the schema; README, "Database
roles")."""

from typing import Any

from django.core.management.base import CommandError
from django.core.management.commands.migrate import Command as DjangoMigrate
from django.db import DatabaseError

# PostgreSQL's insufficient_privilege (42501): "permission denied", "must be owner of".
INSUFFICIENT_PRIVILEGE = "42501"


class Command(DjangoMigrate):
    def handle(self, *args: Any, **options: Any) -> str | None:
        try:
            return super().handle(*args, **options)
        except DatabaseError as exc:
            cause = exc.__cause__
            if getattr(cause, "sqlstate", None) != INSUFFICIENT_PRIVILEGE:
                raise
            first_line = str(cause).splitlines()[0]
            raise CommandError(
                f"{first_line}: this role may not change the schema. Run migrate as the tables' owner: "
                "DATABASE_OWNER_URL=postgres://<owner>@... manage.py migrate --database owner "
                '(README, "Database roles").'
            ) from None

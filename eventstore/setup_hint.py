"""The first five minutes: an unmigrated database gets a one-line hint, not a traceback.

Only when a query has already failed do we ask whether migrations are missing, so a working
system pays nothing for it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse

HINT = "The database is not migrated: run `python manage.py migrate` first."


def database_unmigrated() -> bool:
    """True when migrations are missing from the database (the django_migrations table or rows)."""
    from django.db.migrations.executor import MigrationExecutor

    try:
        if connection.in_atomic_block and connection.needs_rollback:
            return False  # cannot ask inside a failed transaction; let the real error through
        executor = MigrationExecutor(connection)
        return bool(executor.migration_plan(executor.loader.graph.leaf_nodes()))
    except DatabaseError:
        return True


class MigratedCommand(BaseCommand):
    """A management command that answers an unmigrated database with the hint."""

    def execute(self, *args: Any, **options: Any) -> str | None:
        try:
            return super().execute(*args, **options)
        except DatabaseError as exc:
            if database_unmigrated():
                raise CommandError(HINT) from exc
            raise


class UnmigratedDatabaseMiddleware:
    """Answers 503 with the hint, instead of a 500 page, when the tables are not there yet."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, DatabaseError) and database_unmigrated():
            return HttpResponse(HINT, status=503, content_type="text/plain; charset=utf-8")
        return None

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from eventstore.roles import AppRoleRefused, app_role_grant


class Command(BaseCommand):
    help = (
        "PostgreSQL: make an existing role the application role (INSERT and SELECT only on the event log). "
        "Run it as the log's owner, after migrate: --database owner."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--role", required=True, help="The role DATABASE_URL logs in as.")
        parser.add_argument(
            "--database", default="default", help="Alias to connect with: the owner's (default: default)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            statements = app_role_grant(role=options["role"], using=options["database"])
        except AppRoleRefused as exc:
            raise CommandError(str(exc)) from None
        for statement in statements:
            self.stdout.write(f"{statement};")

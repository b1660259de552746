from typing import Any

from django.core.management.base import CommandError, CommandParser

from eventstore.setup_hint import MigratedCommand
from eventstore.unknown_types import AcknowledgeRefused, event_type_acknowledge


class Command(MigratedCommand):
    help = (
        "Acknowledge the events of a type no installed app registers (see projection_status): "
        "appends an EventTypeAcknowledged event, after which the type no longer counts against health."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("type_name", metavar="TYPE", help="The unregistered event type.")
        parser.add_argument(
            "--reason", required=True, help="Why no projection needs to read it; kept in the log."
        )
        parser.add_argument(
            "--actor", default="manage.py event_type_acknowledge", help="Who decided (kept in the log)."
        )

    def handle(self, *args: Any, type_name: str, reason: str, actor: str, **options: Any) -> None:
        try:
            event_type_acknowledge(type_name=type_name, reason=reason, actor=actor)
        except AcknowledgeRefused as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"{type_name}: acknowledged; its events no longer count against health")

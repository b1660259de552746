from typing import Any

from django.core.management.base import CommandError, CommandParser

from eventstore.management.commands._parked_output import parked_outcomes_write
from eventstore.parked_cases import ParkedCaseRefused, parked_case_skip
from eventstore.setup_hint import MigratedCommand


class Command(MigratedCommand):
    help = (
        "Let every projection that parked a business case pass its first parked event: appends one "
        "ParkedEventSkipped event for the case (replays pass it too), then applies the events queued "
        "behind it; exits 1 if one of those fails in turn (the case stays parked on it)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "case", metavar="CASE", help="The business case: its correlation id (the order id)."
        )
        parser.add_argument("--reason", required=True, help="Why it is safe to pass it; kept in the log.")
        parser.add_argument(
            "--position",
            type=int,
            help="The parked event you looked at (`parked_cases`): nothing is skipped if the case is "
            "parked on another one by now.",
        )
        parser.add_argument(
            "--actor", default="manage.py parked_case_skip", help="Who decided (kept in the log)."
        )

    def handle(
        self, *args: Any, case: str, reason: str, actor: str, position: int | None, **options: Any
    ) -> None:
        try:
            outcomes = parked_case_skip(correlation_id=case, reason=reason, actor=actor, position=position)
        except ParkedCaseRefused as exc:
            raise CommandError(str(exc)) from None
        parked_outcomes_write(
            self, case=case, outcomes=outcomes, done="skipped; {applied} event(s) applied or passed"
        )

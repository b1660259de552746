from typing import Any

from django.core.management.base import CommandError, CommandParser

from eventstore.management.commands._parked_output import parked_outcomes_write
from eventstore.parked_cases import ParkedCaseRefused, parked_case_retry
from eventstore.setup_hint import MigratedCommand


class Command(MigratedCommand):
    help = (
        "Apply a parked business case's events again (after a fix) in every projection that parked "
        "it, in log order; exits 1 if it is still parked (the event it failed on again is named)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "case", metavar="CASE", help="The business case: its correlation id (the order id)."
        )
        parser.add_argument("--actor", default="manage.py parked_case_retry", help="Who retried (logged).")

    def handle(self, *args: Any, case: str, actor: str, **options: Any) -> None:
        try:
            outcomes = parked_case_retry(correlation_id=case, actor=actor)
        except ParkedCaseRefused as exc:
            raise CommandError(str(exc)) from None
        parked_outcomes_write(self, case=case, outcomes=outcomes, done="{applied} event(s) applied")

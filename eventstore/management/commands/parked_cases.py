import dataclasses
import json
from typing import Any

from django.core.management.base import CommandParser

from eventstore.parked_cases import parked_cases_list
from eventstore.setup_hint import MigratedCommand


class Command(MigratedCommand):
    help = (
        "List the parked business cases: the event each is parked on, its error, the projections "
        "that parked it, since when, and how many events wait queued behind it. Resolve one with "
        "parked_case_retry (after a fix) or parked_case_skip."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="One JSON list.")

    def handle(self, *args: Any, json: bool = False, **options: Any) -> None:
        cases = parked_cases_list()
        if json:
            self.stdout.write(_dumps([dataclasses.asdict(c) for c in cases]))
            return
        if not cases:
            self.stdout.write("no business case is parked")
        for c in cases:
            self.stdout.write(
                f"{c.correlation_id}: event #{c.position} ({c.type}) in {', '.join(c.projections)} "
                f"since {c.since:%Y-%m-%d %H:%M:%S %Z}, {c.attempts} attempt(s), {c.queued} queued behind: {c.error}"
            )


def _dumps(value: object) -> str:
    return json.dumps(value, indent=2, default=str)

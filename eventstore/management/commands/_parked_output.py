"""What parked_case_retry and parked_case_skip print: a line per projection, exit 1 if still parked."""

from collections.abc import Sequence

from django.core.management.base import BaseCommand, CommandError

from eventstore.parked_cases import CaseOutcome


def parked_outcomes_write(
    command: BaseCommand, *, case: str, outcomes: Sequence[CaseOutcome], done: str
) -> None:
    for o in outcomes:
        state = f"still parked: {o.error}" if o.still_parked else "resolved"
        command.stdout.write(f"{o.projection}: {done.format(applied=o.applied)}; {state}")
    if any(o.still_parked for o in outcomes):
        raise CommandError(f"business case {case} is still parked")

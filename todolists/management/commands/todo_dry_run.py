from typing import Any

from django.core.management.base import CommandError, CommandParser

from eventstore.setup_hint import MigratedCommand
from todolists.dry_run import DryRunRefused, todo_list_dry_run, todo_list_load


class Command(MigratedCommand):
    help = (
        "Try a TODO list declared in code but not registered: fold today's log through it into a "
        "temporary table and print what it would hold (open, by age, a sample of keys). Writes "
        "nothing to the live tables, appends nothing, runs no automation."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "path", metavar="path.to.module:list_object", help="Where the TodoList is declared."
        )

    def handle(self, *args: Any, path: str, **options: Any) -> None:
        try:
            run = todo_list_dry_run(todo=todo_list_load(path=path))
        except DryRunRefused as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            f"{run.name} ({run.title}): {run.folded} events folded, log read to position {run.position}"
        )
        self.stdout.write(f"  open: {run.open} (due now: {run.due}), parked: {run.parked}, done: {run.done}")
        self.stdout.write(
            "  waiting, by age: " + ", ".join(f"{label}: {n}" for label, n in run.by_age.items())
        )
        self.stdout.write(f"  oldest keys: {', '.join(run.sample) or '(none)'}")
        if run.parked_cases:
            self.stdout.write(
                f"  would park {run.parked_cases} business case(s): an event of each could not be applied"
            )
        if run.halted:
            raise CommandError(f"{run.name}: {run.halted}")

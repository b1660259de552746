import json
from typing import Any

from django.core.management.base import CommandError, CommandParser

from eventstore.setup_hint import MigratedCommand
from todolists.ui.verdict import Level, Verdict, process_verdict


class Command(MigratedCommand):
    help = (
        "Show each projection's checkpoint, the log head, the lag, its level in the process verdict "
        "and, if it halted, the error. Exits non-zero, with the reasons, when a projection is failing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="Print JSON instead of a table.")

    def handle(self, *args: Any, **options: Any) -> None:
        verdict = process_verdict()
        rows = verdict.projection_rows
        if options["json"]:
            self.stdout.write(
                json.dumps([{**r.status.as_dict(), "level": str(r.level)} for r in rows], indent=2)
            )
        else:
            self._table(verdict)
        failing = [
            f.sentence()
            for f in verdict.findings
            if f.subject.startswith("projection:") and f.level == Level.FAILING
        ]
        if failing:
            raise CommandError("; ".join(failing))

    def _table(self, verdict: Verdict) -> None:
        self.stdout.write(f"{'projection':<28} {'checkpoint':>10} {'head':>10} {'lag':>8}  status")
        for row in verdict.projection_rows:
            r = row.status
            status = (
                f"HALTED at {r.error_position} ({r.error_type}): {r.error_message}"
                if r.halted
                else str(row.level)
            )
            if r.skipped:
                status += f" ({r.skipped} event(s) skipped by operators)"
            self.stdout.write(f"{r.name:<28} {r.position:>10} {r.head:>10} {r.lag:>8}  {status}")
        for f in verdict.findings:
            if f.subject == "log":
                self.stdout.write(f.sentence())

import json

from django.core.management.base import CommandError

from eventstore.setup_hint import MigratedCommand
from todolists.verdict import Level, process_verdict


class Command(MigratedCommand):
    help = (
        "Per TODO list: open items (parked included), due now, retrying, parked, done, lag, the oldest "
        "open item's age and the verdict's level, then every reason. --check exits 1 at attention "
        "and 2 when failing."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--json", action="store_true", help="Print the verdict as JSON instead of a table."
        )
        parser.add_argument(
            "--check",
            action="store_true",
            help="Exit non-zero, with every reason, unless the verdict is ok (for cron and monitors).",
        )

    def handle(self, *args, **options):
        verdict = process_verdict()
        if options["json"]:
            self.stdout.write(json.dumps(verdict.as_dict(), indent=2))
        else:
            self._table(verdict)
        if options["check"] and verdict.level != Level.OK:
            raise CommandError(
                f"{verdict.level}: " + "; ".join(verdict.reasons),
                returncode=2 if verdict.level == Level.FAILING else 1,
            )

    def _table(self, verdict) -> None:
        self.stdout.write(
            f"{'list':<20} {'open':>6} {'due':>6} {'retrying':>8} {'parked':>6} {'done':>7} {'lag':>6}  "
            f"{'oldest open':>11}  level"
        )
        for r in verdict.lists:
            age = f"{r.oldest_open_age_seconds:.0f}s" if r.oldest_open_age_seconds is not None else "-"
            paused = " (paused)" if r.paused else ""
            self.stdout.write(
                f"{r.name:<20} {r.open:>6} {r.due:>6} {r.retrying:>8} {r.parked:>6} {r.done:>7} {r.lag:>6}  "
                f"{age:>11}  {r.level}{paused}"
            )
        self.stdout.write(f"verdict: {verdict.level}")
        for sentence in verdict.reasons:
            self.stdout.write(f"- {sentence}")

import json

from django.core.management.base import CommandError

from eventstore.setup_hint import MigratedCommand
from todolists.status import system_health


class Command(MigratedCommand):
    help = (
        "Per TODO list: open items (parked included), due now, retrying, parked, done, lag, the oldest "
        "open item's age and the state (ok / stuck / halted). --check exits non-zero when unhealthy."
    )

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="Print JSON instead of a table.")
        parser.add_argument(
            "--check",
            action="store_true",
            help="Exit with an error naming each stuck list or halted projection (for cron and monitors).",
        )

    def handle(self, *args, **options):
        rows, _, reasons = system_health()
        if options["json"]:
            self.stdout.write(json.dumps([r.as_dict() for r in rows], indent=2))
        else:
            self.stdout.write(
                f"{'list':<20} {'open':>6} {'due':>6} {'retrying':>8} {'parked':>6} {'done':>7} {'lag':>6}  "
                f"{'oldest open':>11}  state"
            )
            for r in rows:
                age = f"{r.oldest_open_age_seconds:.0f}s" if r.oldest_open_age_seconds is not None else "-"
                self.stdout.write(
                    f"{r.name:<20} {r.open:>6} {r.due:>6} {r.retrying:>8} {r.parked:>6} {r.done:>7} {r.lag:>6}  "
                    f"{age:>11}  {r.state}"
                )
        if options["check"] and reasons:
            raise CommandError("; ".join(reasons))

import json

from django.core.management.base import BaseCommand

from todolists.status import todo_lists_status


class Command(BaseCommand):
    help = "Per TODO list: open items (parked included), due now, retrying, parked, and the oldest open item's age."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="Print JSON instead of a table.")

    def handle(self, *args, **options):
        rows = todo_lists_status()
        if options["json"]:
            self.stdout.write(json.dumps([r.as_dict() for r in rows], indent=2))
            return
        self.stdout.write(
            f"{'list':<20} {'open':>6} {'due':>6} {'retrying':>8} {'parked':>6} {'done':>7} {'lag':>6}  oldest open"
        )
        for r in rows:
            age = f"{r.oldest_open_age_seconds:.0f}s" if r.oldest_open_age_seconds is not None else "-"
            self.stdout.write(
                f"{r.name:<20} {r.open:>6} {r.due:>6} {r.retrying:>8} {r.parked:>6} {r.done:>7} {r.lag:>6}  {age}"
            )

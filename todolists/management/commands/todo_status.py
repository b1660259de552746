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
        parser.add_argument(
            "--as-of",
            metavar="POSITION|ISO-TIME",
            help="Every list as it was at that point of the log (open items, attempts, parked), "
            "folded from the log into a temporary table; the live rows are not read.",
        )

    def as_of(self, moment: str, *, as_json: bool) -> None:
        from todolists.as_of import NoSuchMoment, position_at, todo_lists_as_of

        try:
            position = position_at(moment)
            lists = todo_lists_as_of(position=position)
        except NoSuchMoment as exc:
            raise CommandError(str(exc)) from None
        if as_json:
            self.stdout.write(
                json.dumps({"position": position, "lists": [x.as_dict() for x in lists]}, indent=2)
            )
            return
        self.stdout.write(f"as of position {position}:")
        self.stdout.write(f"{'list':<20} {'open':>6} {'parked':>6}  items (key: status, attempts)")
        for x in lists:
            items = ", ".join(f"{i['key'][:8]}: {i['status']}, {i['attempts']}" for i in x.items[:5])
            more = f" ... {len(x.items) - 5} more" if len(x.items) > 5 else ""
            self.stdout.write(f"{x.name:<20} {x.open:>6} {x.parked:>6}  {items}{more}")

    def handle(self, *args, **options):
        if options["as_of"]:
            return self.as_of(options["as_of"], as_json=options["json"])
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

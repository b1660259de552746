import json
from typing import Any

from django.core.management.base import CommandError, CommandParser

from eventstore.setup_hint import MigratedCommand
from todolists.ui.verdict import Level, Verdict, process_verdict


class Command(MigratedCommand):
    help = (
        "Per TODO list: open items (parked included), due now, retrying, parked, done, lag, the oldest "
        "open item's age and the verdict's level, then every reason. --check exits 1 at attention "
        "and 2 when failing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--json", action="store_true", help="Print the verdict as JSON instead of a table."
        )
        parser.add_argument(
            "--check",
            action="store_true",
            help="Exit non-zero, with every reason, unless the verdict is ok (for cron and monitors).",
        )
        parser.add_argument(
            "--as-of",
            metavar="POSITION|ISO-TIME",
            help="Every list as it was at that point of the log (open items, attempts, parked), "
            "folded from the log into a temporary table; the live rows are not read.",
        )

    def as_of(self, moment: str, *, as_json: bool) -> None:
        from todolists.ui.as_of import NoSuchMoment, position_at, todo_lists_as_of

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

    def handle(self, *args: Any, **options: Any) -> None:
        if options["as_of"]:
            return self.as_of(options["as_of"], as_json=options["json"])
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

    def _table(self, verdict: Verdict) -> None:
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

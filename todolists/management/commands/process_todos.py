from typing import Any

from django.core.management.base import CommandError, CommandParser

from eventstore.setup_hint import MigratedCommand
from eventstore.store import log_head
from todolists.lists import registry
from todolists.runner import todo_lists_work
from todolists.ui.status import todo_items_parked_since


class Command(MigratedCommand):
    help = (
        "Catch up the projections and work every due TODO item inline, without a cluster, until "
        "nothing is due (or only the list given). Prints worked / succeeded / failed / parked per list."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--list", dest="list_name", default=None, help=f"Only this list ({', '.join(registry.names())})."
        )

    def handle(self, *args: Any, list_name: str | None, **options: Any) -> None:
        if list_name is not None and list_name not in registry.names():
            raise CommandError(f"Unknown TODO list {list_name!r} (known: {', '.join(registry.names())}).")
        before = log_head()
        results = todo_lists_work(names=[list_name] if list_name else None)
        parked = todo_items_parked_since(position=before)
        totals: dict[str, list[int]] = {}
        for r in results:
            worked, failed = totals.setdefault(r.list_name, [0, 0])
            totals[r.list_name] = [worked + r.worked, failed + r.failed]
        for name, (worked, failed) in sorted(totals.items()):
            self.stdout.write(
                f"{name}: {worked} worked, {worked - failed} succeeded, {failed} failed, "
                f"{parked.get(name, 0)} parked"
            )
        halted = sorted({r.list_name for r in results if r.halted})
        if halted:
            raise CommandError(
                f"Not worked, their projections halted: {', '.join(halted)} (see projection_status)."
            )

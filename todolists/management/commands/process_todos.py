from django.core.management.base import BaseCommand, CommandError

from todolists.lists import registry
from todolists.runner import todo_lists_work


class Command(BaseCommand):
    help = (
        "Catch up the projections and work every due TODO item inline, without a cluster, until "
        "nothing is due (or only the list given)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--list", dest="list_name", default=None, help=f"Only this list ({', '.join(registry.names())})."
        )

    def handle(self, *args, list_name, **options):
        if list_name is not None and list_name not in registry.names():
            raise CommandError(f"Unknown TODO list {list_name!r} (known: {', '.join(registry.names())}).")
        results = todo_lists_work(names=[list_name] if list_name else None)
        totals: dict[str, list[int]] = {}
        for r in results:
            worked, failed = totals.setdefault(r.list_name, [0, 0])
            totals[r.list_name] = [worked + r.worked, failed + r.failed]
        for name, (worked, failed) in sorted(totals.items()):
            self.stdout.write(f"{name}: {worked} worked, {failed} failed")
        halted = sorted({r.list_name for r in results if r.halted})
        if halted:
            raise CommandError(
                f"Not worked, their projections halted: {', '.join(halted)} (see projection_status)."
            )

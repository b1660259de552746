import json

from django.core.management.base import CommandError

from eventstore.projections import projection_status, unregistered_events
from eventstore.setup_hint import MigratedCommand


class Command(MigratedCommand):
    help = (
        "Show each projection's checkpoint, the log head, the lag and, if it halted, the error. "
        "Exits non-zero, naming them, when a projection is halted."
    )

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="Print JSON instead of a table.")

    def handle(self, *args, **options):
        rows = projection_status()
        unknown = unregistered_events()
        if options["json"]:
            self.stdout.write(json.dumps([r.as_dict() for r in rows], indent=2))
        else:
            self._table(rows, unknown)
        halted = [f"{r.name} at #{r.error_position} ({r.error_type})" for r in rows if r.halted]
        if halted:
            raise CommandError(f"Halted: {', '.join(halted)}. Fix the handler or the event, then catch up.")

    def _table(self, rows, unknown) -> None:
        self.stdout.write(f"{'projection':<28} {'checkpoint':>10} {'head':>10} {'lag':>8}  status")
        for r in rows:
            status = f"HALTED at {r.error_position} ({r.error_type}): {r.error_message}" if r.halted else "ok"
            if r.skipped:
                status += f" ({r.skipped} event(s) skipped by operators)"
            self.stdout.write(f"{r.name:<28} {r.position:>10} {r.head:>10} {r.lag:>8}  {status}")
        held = next((r for r in rows if r.held_back_seconds is not None), None)
        if held:
            self.stdout.write(
                f"readers are held back by a write transaction open for {held.held_back_seconds:.0f}s "
                f"(pid {held.held_back_pid}); events it and later ones append are not visible until it ends"
            )
        for type_name, count in unknown.items():
            self.stdout.write(f"unregistered event type {type_name}: {count} event(s) no projection reads")

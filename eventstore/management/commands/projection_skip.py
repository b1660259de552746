from django.core.management.base import CommandError

from eventstore.projections import SkipRefused, projection_skip
from eventstore.registry import NotRegistered
from eventstore.setup_hint import MigratedCommand


class Command(MigratedCommand):
    help = (
        "Let a halted projection pass one event it cannot apply: appends a ProjectionEventSkipped "
        "event (so replays skip it too) and catches the projection up. Refused unless the "
        "projection is halted at that position, unless --force."
    )

    def add_arguments(self, parser):
        parser.add_argument("name", metavar="NAME", help="The projection (see projection_status).")
        parser.add_argument("--position", type=int, required=True, help="The event's position in the log.")
        parser.add_argument("--reason", required=True, help="Why it is safe to pass it; kept in the log.")
        parser.add_argument(
            "--force", action="store_true", help="Skip it even if the projection is not halted there."
        )
        parser.add_argument(
            "--actor", default="manage.py projection_skip", help="Who decided (kept in the log)."
        )

    def handle(self, *args, name, position, reason, force, actor, **options):
        try:
            result = projection_skip(name=name, position=position, reason=reason, actor=actor, force=force)
        except (SkipRefused, NotRegistered) as exc:
            raise CommandError(str(exc)) from None
        state = f"halted again: {result.error}" if result.error else "caught up"
        self.stdout.write(f"{name}: skips position {position}; {state} at checkpoint {result.position}")

from django.core.management.base import CommandError

from eventstore.poison import projections_skip_event
from eventstore.projections import SkipRefused, projection_skip
from eventstore.registry import NotRegistered
from eventstore.setup_hint import MigratedCommand


class Command(MigratedCommand):
    help = (
        "Let halted projections pass one event they cannot apply: appends a ProjectionEventSkipped "
        "event per projection (so replays skip it too) and catches each up. Without NAME, every "
        "projection halted at that position; with NAME, that one only (refused unless it is halted "
        "there, unless --force)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "name",
            metavar="NAME",
            nargs="?",
            help="One projection (see projection_status); default: all halted there.",
        )
        parser.add_argument("--position", type=int, required=True, help="The event's position in the log.")
        parser.add_argument("--reason", required=True, help="Why it is safe to pass it; kept in the log.")
        parser.add_argument(
            "--force",
            action="store_true",
            help="With NAME: skip it even if the projection is not halted there.",
        )
        parser.add_argument(
            "--actor", default="manage.py projection_skip", help="Who decided (kept in the log)."
        )

    def handle(self, *args, name, position, reason, force, actor, **options):
        if force and not name:
            raise CommandError("--force needs a NAME: it skips an event a projection is not halted on.")
        try:
            if name:
                results = {
                    name: projection_skip(
                        name=name, position=position, reason=reason, actor=actor, force=force
                    )
                }
            else:
                results = projections_skip_event(position=position, reason=reason, actor=actor)
        except (SkipRefused, NotRegistered) as exc:
            raise CommandError(str(exc)) from None
        for projection, result in results.items():
            state = f"halted again: {result.error}" if result.error else "caught up"
            self.stdout.write(
                f"{projection}: skips position {position}; {state} at checkpoint {result.position}"
            )

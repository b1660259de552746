import sys

from django.core.management.base import BaseCommand, CommandError

from eventstore.projections import registry
from eventstore.registry import NotRegistered
from eventstore.replay import ReplayRefused, projection_replay
from eventstore.store import log_head


class Command(BaseCommand):
    help = (
        "Rebuild projections (read models and TODO lists) from position 0 of the event log, into "
        "shadow tables in short batches while the live ones keep serving, then swap them in. "
        "Replay never calls the payment gateway or appends events."
    )

    def add_arguments(self, parser):
        parser.add_argument("names", nargs="*", metavar="NAME", help="Projections to replay (default: all).")
        parser.add_argument(
            "--batch-size", type=int, default=5000, help="Events per batch transaction (default 5000)."
        )

    def handle(self, *args, names, batch_size, **options):
        if batch_size < 1:
            raise CommandError("--batch-size must be a positive integer.")
        try:
            selected = [registry.get(n).name for n in names] or registry.names()
        except NotRegistered as exc:
            raise CommandError(str(exc)) from None
        head = log_head()
        halted = []
        for name in selected:
            try:
                result = self._replay(name, head, batch_size)
            except ReplayRefused as exc:
                raise CommandError(str(exc)) from None
            if result.error:
                halted.append(name)
                self.stderr.write(f"{name}: {result.error}")
            else:
                self.stdout.write(f"{name}: applied {result.applied} events, checkpoint {result.position}")
        if halted:
            raise CommandError(
                f"Replay stopped for: {', '.join(halted)}. Fix the handler, or pass the event with "
                "projection_skip (see projection_status)."
            )

    def _replay(self, name, head, batch_size):
        if not self.stdout.isatty():
            return projection_replay(name=name, batch_size=batch_size)
        from tqdm import tqdm

        # tqdm shows the rate and the time left.
        with tqdm(total=head, desc=name, unit=" positions", file=sys.stdout, leave=False) as bar:

            def advance(position: int) -> None:
                bar.update(max(position - bar.n, 0))

            return projection_replay(name=name, batch_size=batch_size, progress=advance)

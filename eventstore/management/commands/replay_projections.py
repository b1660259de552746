import concurrent.futures
import multiprocessing
import sys
from collections.abc import Iterable
from typing import Any, TypedDict

from django.core.management.base import CommandError, CommandParser
from django.db import connections

from eventstore.backends import backend
from eventstore.projections import registry
from eventstore.registry import NotRegistered
from eventstore.replay import ReplayRefused
from eventstore.setup_hint import MigratedCommand
from eventstore.shadow_diff import CheckedReplay, projection_replay_checked
from eventstore.store import log_head

# A replay's result, or why it was refused.
Outcome = CheckedReplay | ReplayRefused


class ReplayOptions(TypedDict):
    """The options every replay of one run shares (passed to worker processes)."""

    check: bool
    accept_differences: bool
    actor: str


def _selected(names: list[str], *, batch_size: int, jobs: int) -> list[str]:
    """The projections to replay, once the options are known to be sound."""
    if batch_size < 1:
        raise CommandError("--batch-size must be a positive integer.")
    if jobs < 1:
        raise CommandError("--jobs must be a positive integer.")
    if jobs > 1 and not backend().concurrent_writers:
        raise CommandError("--jobs needs PostgreSQL: SQLite has one writer at a time.")
    try:
        return [registry.get(n).name for n in names] or registry.names()
    except NotRegistered as exc:
        raise CommandError(str(exc)) from None


class Command(MigratedCommand):
    help = (
        "Rebuild projections (read models and TODO lists) from position 0 of the event log, into "
        "shadow tables in short batches while the live ones keep serving, compare them with the live "
        "rows, then swap them in. A rebuild that differs by more than EVENTSTORE_REPLAY_MAX_DIFFERENCES "
        "rows is not swapped unless --accept-differences; a swap that changed rows is recorded as a "
        "ProjectionRebuilt event. Replay never calls the payment gateway."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("names", nargs="*", metavar="NAME", help="Projections to replay (default: all).")
        parser.add_argument(
            "--batch-size", type=int, default=5000, help="Events per batch transaction (default 5000)."
        )
        parser.add_argument(
            "--jobs",
            type=int,
            default=1,
            help="Projections rebuilt at once, each in its own process (PostgreSQL; default 1).",
        )
        parser.add_argument(
            "--check",
            action="store_true",
            help="Rebuild and compare with the live rows, print the rows that differ, swap nothing; "
            "exit 1 on any difference.",
        )
        parser.add_argument(
            "--accept-differences",
            action="store_true",
            help="Swap even a rebuild that differs by more than EVENTSTORE_REPLAY_MAX_DIFFERENCES rows.",
        )
        parser.add_argument(
            "--actor", default="manage.py replay_projections", help="Who replays (kept in the log)."
        )

    def handle(
        self,
        *args: Any,
        names: list[str],
        batch_size: int,
        jobs: int,
        check: bool,
        accept_differences: bool,
        actor: str,
        **options: Any,
    ) -> None:
        selected = _selected(names, batch_size=batch_size, jobs=jobs)
        head = log_head()
        self._options: ReplayOptions = {
            "check": check,
            "accept_differences": accept_differences,
            "actor": actor,
        }
        halted: list[str] = []
        differing: list[str] = []
        refused: list[str] = []
        results: Iterable[Outcome]
        if jobs > 1:
            results = self._replay_in_processes(selected, batch_size, jobs)
        else:
            results = (self._replay(name, head, batch_size) for name in selected)
        for name, checked in zip(selected, results, strict=True):
            if isinstance(checked, ReplayRefused):
                raise CommandError(str(checked))
            outcome = self._report(name, checked, check=check)
            {"halted": halted, "refused": refused}.get(outcome, []).append(
                checked.refused if outcome == "refused" else name
            )
            if checked.diff is not None and checked.diff.total:
                differing.append(name)
        if halted:
            raise CommandError(
                f"Replay stopped for: {', '.join(halted)}. Fix the handler, or pass the event with "
                "projection_skip (see projection_status)."
            )
        if refused:
            raise CommandError("\n".join(refused))
        if check and differing:
            raise CommandError(f"The rebuild differs from the live rows for: {', '.join(differing)}.")

    def _report(self, name: str, checked: CheckedReplay, *, check: bool) -> str:
        """Print one projection's outcome; "halted", "refused" or "done"."""
        result, diff = checked.result, checked.diff
        if diff is not None and diff.total:
            self.stdout.write(f"{name}: {diff.total} rows differ ({diff.summary()})")
            for line in diff.lines():
                self.stdout.write(f"  {line}")
        if result.error:
            self.stderr.write(f"{name}: {result.error}")
            return "halted"
        if checked.refused:
            return "refused"
        if not check:
            self.stdout.write(f"{name}: applied {result.applied} events, checkpoint {result.position}")
        elif diff is None or not diff.total:
            self.stdout.write(f"{name}: the rebuild equals the live rows")
        return "done"

    def _replay_in_processes(self, names: list[str], batch_size: int, jobs: int) -> list[Outcome]:
        # Each child opens its own connection; none may inherit this one.
        connections.close_all()
        with concurrent.futures.ProcessPoolExecutor(
            jobs, mp_context=multiprocessing.get_context("fork")
        ) as pool:
            return list(pool.map(_replay_one, names, [batch_size] * len(names), [self._options] * len(names)))

    def _replay(self, name: str, head: int, batch_size: int) -> Outcome:
        try:
            return self._replay_with_progress(name, head, batch_size)
        except ReplayRefused as exc:
            return exc

    def _replay_with_progress(self, name: str, head: int, batch_size: int) -> CheckedReplay:
        if not self.stdout.isatty():
            return projection_replay_checked(name=name, batch_size=batch_size, **self._options)
        from tqdm import tqdm

        # tqdm shows the rate and the time left.
        with tqdm(total=head, desc=name, unit=" positions", file=sys.stdout, leave=False) as bar:

            def advance(position: int) -> None:
                bar.update(max(position - bar.n, 0))

            return projection_replay_checked(
                name=name, batch_size=batch_size, progress=advance, **self._options
            )


def _replay_one(name: str, batch_size: int, options: ReplayOptions) -> Outcome:
    try:
        return projection_replay_checked(name=name, batch_size=batch_size, **options)
    except ReplayRefused as exc:
        return exc
    finally:
        connections.close_all()

"""The automation runner: claim a batch of due items, work it, record the outcomes as events.

Per batch, not per item: one claim, one lease renewal, one call of the list's work function with
the whole batch (it re-reads the batch's streams in one query, decides item by item, the side
effect concurrently where the gateway allows, and appends the batch's outcomes in one
transaction: `events_append`), one catch-up of the list, one release. While the
batch is in hand a heartbeat keeps its leases alive (see todolists/leases.py).

Every failure of an item is a failed attempt, recorded as `TodoAttemptFailed` on the item's own
stream with the error and the time of the next try (exponential backoff), whatever the list.
After `TODO_MAX_ATTEMPTS` the item is parked and stays visible until an operator asks for a
retry, which is an event too.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime
import functools
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence

from django.conf import settings
from django.db import connection, connections
from django.utils import timezone

from eventstore.projections import (
    CatchUpResult,
    held_correlations,
    projection_catch_up,
    projections_catch_up,
)
from eventstore.store import correlations_read, event_append
from todolists.conf import conf
from todolists.events import TodoAttemptFailed
from todolists.leases import (
    LeaseHeartbeat,
    todo_items_claim,
    todo_items_claimable,
    todo_items_release,
    todo_items_still_mine,
    todo_leases_held_by_others,
    worker_id,
)
from todolists.lists import TodoList, registry
from todolists.models import TodoItem
from todolists.nudge import todo_lists_nudge
from todolists.operator import todo_item_park, todo_stream
from todolists.pause import todo_list_paused, todo_lists_paused

logger = logging.getLogger(__name__)

# How often a task that finished its own work looks again while other workers hold leases.
TAKEOVER_POLL_SECONDS = 0.5
# A list's turn in a round: at most this many items before the other lists get theirs. A backlog
# is worked in batches that double up to this size; a trickle in batches of 10.
TURN_ITEMS = 40
# How often a task's rounds read the held business cases (halted or parked) and the paused lists again.
REREAD_SECONDS = 1.0


def backoff(*, attempt: int) -> datetime.timedelta:
    """5 s, 10 s, 20 s, ... (TODO_BACKOFF_SECONDS doubled per attempt), capped at one hour."""
    return datetime.timedelta(seconds=min(conf.backoff_seconds * 2 ** (attempt - 1), 3600))


class NoOutcome(Exception):
    """The work function returned, yet the item is still open and no failure was recorded."""


def todo_item_attempt_failed(*, todo: TodoList, item: TodoItem, error: Exception) -> None:
    """Record a failed attempt (and park the item once it has used up its attempts)."""
    attempt = item.attempts + 1
    message = f"{type(error).__name__}: {error}"[:2000]
    event_append(
        stream_id=todo_stream(list_name=todo.name, key=item.key),
        events=[
            TodoAttemptFailed(
                list=todo.name,
                key=item.key,
                attempt=attempt,
                error=message,
                retry_at=timezone.now() + backoff(attempt=attempt),
            )
        ],
        expected_version=None,
        correlation_id=item.correlation_id,
        actor="automation",
    )
    if attempt >= conf.max_attempts:
        todo_item_park(
            item=item, reason=f"gave up after {attempt} attempts; last error: {message}", actor="automation"
        )


def _act_on(act: Callable[[TodoItem], object], item: TodoItem) -> Exception | None:
    try:
        act(item)
    except Exception as exc:
        return exc
    return None


def todo_items_each(
    *,
    items: Sequence[TodoItem],
    act: Callable[[TodoItem], object],
    deadline: float,
    concurrency: int = 1,
) -> dict[str, Exception | None]:
    """Run `act` on each item, catching each item's failure: {key: None (done) or the error}.

    Items not started by the deadline are left out (the runner releases them). With concurrency
    above 1, the items run in a few threads (for network-bound side effects such as a Stripe
    call); each thread closes its own database connection when the batch is done. Inside an outer transaction
    they run one by one in this thread, since other connections could not see its writes.
    """
    results: dict[str, Exception | None] = {}
    if concurrency <= 1 or len(items) <= 1 or connection.in_atomic_block:
        for item in items:
            if time.monotonic() >= deadline:
                break
            results[item.key] = _act_on(act, item)
        return results

    # A few threads take the items one after another, each on one database connection for the
    # whole batch (a connection per item would cost a connect and its setup each time).
    todo = iter(items)
    taking = threading.Lock()
    threads = min(concurrency, len(items))

    def take_in_turn() -> None:
        try:
            while True:
                with taking:
                    item = next(todo, None)
                if item is None or time.monotonic() >= deadline:
                    return
                results[item.key] = _act_on(act, item)
        finally:
            connections.close_all()  # this thread's own

    with concurrent.futures.ThreadPoolExecutor(max_workers=threads) as pool:
        for future in [pool.submit(take_in_turn) for _ in range(threads)]:
            future.result()
    return results


@dataclasses.dataclass
class WorkResult:
    list_name: str
    worked: int = 0
    failed: int = 0
    halted: str = ""
    paused: bool = False
    caught_up: CatchUpResult | None = None  # the list's last catch-up in this call
    batch: int = 0  # stopped with more due: the batch size to go on with (0: nothing more was due)


def todo_list_work(
    *,
    list_name: str,
    batch: int = 10,
    max_items: int = 500,
    deadline: float | None = None,
    worker: str | None = None,
    caught_up: CatchUpResult | None = None,
    avoid: set[str] | None = None,
    task_started_at: datetime.datetime | None = None,
    paused: bool | None = None,
    grow_to: int = 0,
) -> WorkResult:
    """Work the due items of one list, a batch at a time, recording failures, until nothing is
    due, `max_items`, or `deadline` (time.monotonic(); by default `work_deadline()`). A caller
    that has just caught the list up passes that as `caught_up`, and `avoid` / `paused` if it has
    read `held_correlations()` / `todo_lists_paused()`. With `grow_to`, a full batch doubles the
    next up to that size (a backlog shares each batch's claim, renewal, re-read and catch-up
    among more items); `result.batch` is the size to go on with."""
    todo = registry.get(list_name)
    worker = worker or worker_id()
    result = WorkResult(list_name)
    if todo_list_paused(list_name=list_name) if paused is None else paused:
        # An operator paused it (todolists/pause.py): its items wait, nothing is claimed.
        result.paused = True
        return result
    deadline = deadline or work_deadline()
    # Each batch ends with a catch-up (see _work_batch), so only the first needs one up front.
    caught_up = caught_up or projection_catch_up(name=todo.projection_name)
    avoid = held_correlations() if avoid is None else avoid  # halted or parked: the operator's
    while not caught_up.error and result.worked < max_items and time.monotonic() < deadline:
        limit = min(batch, max_items - result.worked)
        items = todo_items_claim(
            list_name=todo.name, worker=worker, limit=limit, avoid=avoid, task_started_at=task_started_at
        )
        if items:
            caught_up = _work_claimed(todo, items, worker, result, deadline)
            if caught_up.parked:
                avoid = held_correlations()  # the list's catch-up just parked a case: not in the next batch
        if len(items) < limit:
            break  # nothing more was due: another claim would find nothing
        batch = max(batch, min(batch * 2, grow_to))
    else:
        result.batch = batch  # stopped with more due, at `max_items` or the deadline
    if caught_up.error:
        # The list cannot see outcomes or failed attempts: working it would repeat itself.
        logger.error("%s: projection halted, not working the list: %s", list_name, caught_up.error)
        result.halted = caught_up.error
    result.caught_up = caught_up
    return result


def _work_claimed(
    todo: TodoList, items: list[TodoItem], worker: str, result: WorkResult, deadline: float
) -> CatchUpResult:
    """Work one claimed batch, then release what it leaves."""
    unseen: set[str] = set()
    closed: set[str] = set()
    try:
        return _work_batch(todo, items, worker, result, deadline, unseen, closed)
    finally:
        # What the deadline left unworked is free at once. An item whose outcome is recorded
        # but not yet visible to the list keeps its lease: released, it would be claimed and
        # worked again and again (a hot loop) until a running transaction ends. A closed item
        # is never claimed again: no release (and no statement when the whole batch closed).
        todo_items_release(items=[i for i in items if i.key not in unseen | closed], worker=worker)


def work_deadline() -> float:
    """Half of django-q2's task timeout from now, leaving room for the slowest batch in flight
    (gateway timeouts) and the final catch-up, so a task is never killed halfway."""
    timeout: float = settings.Q_CLUSTER.get("timeout", 60)
    return time.monotonic() + timeout / 2


def _work_batch(
    todo: TodoList,
    items: list[TodoItem],
    worker: str,
    result: WorkResult,
    deadline: float,
    unseen: set[str],
    closed: set[str],
) -> CatchUpResult:
    mine = todo_items_still_mine(items=items, worker=worker)
    # The leases live until the outcomes are on the list, not only while the work runs: a slow
    # catch-up must not let another worker take an item before its backoff shows.
    with LeaseHeartbeat(items=mine, worker=worker):
        return _work_leased(todo, mine, result, deadline, unseen, closed)


def _work_leased(
    todo: TodoList,
    mine: list[TodoItem],
    result: WorkResult,
    deadline: float,
    unseen: set[str],
    closed: set[str],
) -> CatchUpResult:
    """Work the batch; add to `unseen` the keys whose outcome is in the log but not yet on the list,
    and to `closed` those the list has closed."""
    outcomes: Mapping[str, Exception | None] = {}
    if mine:
        try:
            outcomes = todo.work(mine, deadline=deadline)
        except Exception as exc:  # the batch failed as a whole, e.g. its re-read
            outcomes = {i.key: exc for i in mine}
    result.worked += len(outcomes)
    for item in mine:
        error = outcomes.get(item.key)
        if error is not None:
            result.failed += 1
            logger.warning("%s: item %s failed: %s", todo.name, item.key, error)
            todo_item_attempt_failed(todo=todo, item=item, error=error)
    # Close what was just decided before the claims go, so no worker picks it up again.
    caught_up = projection_catch_up(name=todo.projection_name)
    if caught_up.error:
        return caught_up
    succeeded = [i for i in mine if i.key in outcomes and outcomes[i.key] is None]
    missing, not_yet_visible, still_open = _without_outcome(todo, succeeded)
    unseen.update(i.key for i in not_yet_visible)
    closed.update(i.key for i in succeeded if i.key not in still_open)
    for item in missing:
        result.failed += 1
        todo_item_attempt_failed(
            todo=todo, item=item, error=NoOutcome("the work finished without recording an outcome")
        )
    return caught_up


def _without_outcome(
    todo: TodoList, items: list[TodoItem]
) -> tuple[list[TodoItem], list[TodoItem], set[str]]:
    """Of the items still open on the list: those whose closing event is not in the log either, and
    those whose closing event is in the log but not yet on the list (a reader held back by a running
    transaction does not see a fresh outcome yet); and the keys still open."""
    if not items:
        return [], [], set()
    still_open = dict(
        TodoItem.objects.filter(
            list_name=todo.name, key__in=[i.key for i in items], status=TodoItem.Status.OPEN
        ).values_list("key", "attempts")
    )
    suspects = [i for i in items if still_open.get(i.key) == i.attempts]
    if not suspects:
        return [], [], set(still_open)
    closings = correlations_read(correlation_ids=[i.correlation_id for i in suspects], types=todo.closed_by)

    def closed_in_log(item: TodoItem) -> bool:
        return any(
            e.position > item.opened_position and str(getattr(e.event, todo.key_field)) == item.key
            for e in closings[item.correlation_id]
        )

    closed = [i for i in suspects if closed_in_log(i)]
    return [i for i in suspects if i not in closed], closed, set(still_open)


def _downstream(names: list[str]) -> list[str]:
    """The lists opened by what these lists' automations record."""
    recorded = {t for n in names for t in registry.get(n).records}
    return registry.opened_by(recorded)


def _stage(name: str, seen: frozenset[str] = frozenset()) -> int:
    """How many automations stand before this list in the process (payments 0, confirm 1)."""
    upstream = [t.name for t in registry.all() if name in _downstream([t.name]) and t.name not in seen]
    return 1 + max((_stage(u, seen | {name}) for u in upstream), default=-1)


def _nearest_the_end_first(names: Sequence[str]) -> list[str]:
    # An order in flight is finished before a new one is started: that keeps latency flat.
    return sorted(dict.fromkeys(names), key=lambda n: (-_stage(n), n))


@dataclasses.dataclass
class _Rounds:
    """What a task's rounds know between turns: each list's last catch-up and its running total."""

    caught_up: dict[str, CatchUpResult]
    totals: dict[str, WorkResult] = dataclasses.field(default_factory=dict)
    sizes: dict[str, int] = dataclasses.field(default_factory=dict)
    avoid: set[str] = dataclasses.field(default_factory=set)
    paused: set[str] = dataclasses.field(default_factory=set)
    read_at: float = -math.inf

    def refresh(self, lists: list[str]) -> tuple[set[str], set[str]]:
        """The business cases to leave alone and the paused lists, read again at most once per
        REREAD_SECONDS (a round can be one batch; a pause takes effect within that), or at once
        after a catch-up halted or parked a case."""
        if time.monotonic() - self.read_at >= REREAD_SECONDS:
            self.avoid, self.paused = held_correlations(), todo_lists_paused(list_names=registry.names())
            self.read_at = time.monotonic()
        return self.avoid, self.paused & set(lists)

    def add(self, turn: WorkResult) -> None:
        total = self.totals.setdefault(turn.list_name, WorkResult(turn.list_name))
        total.worked, total.failed = total.worked + turn.worked, total.failed + turn.failed
        total.halted, total.paused = turn.halted or total.halted, turn.paused or total.paused
        if turn.halted or (turn.caught_up and turn.caught_up.parked):
            self.read_at = -math.inf  # a case may have just halted or parked: read the avoid set again
        if turn.caught_up:
            self.caught_up[registry.get(turn.list_name).projection_name] = turn.caught_up
        self.sizes[turn.list_name] = turn.batch

    def next_round(self, passed: list[WorkResult], *, lists: Sequence[str], follow: bool) -> list[str]:
        """The lists that worked something (more may be due) and the lists their outcomes open."""
        for turn in passed:
            self.add(turn)
        worked = [r.list_name for r in passed if r.worked]
        more = [r.list_name for r in passed if r.worked and not r.halted]
        opened = _downstream(worked) if follow else [n for n in _downstream(worked) if n in lists]
        for name in opened:
            self.caught_up.pop(registry.get(name).projection_name, None)  # its items came since
        return _nearest_the_end_first([*more, *opened]) if worked else []


def _work_rounds(
    *,
    lists: Sequence[str],
    rounds: int,
    deadline: float,
    worker: str,
    task_started_at: datetime.datetime,
    follow: bool,
    batch: int = 10,
) -> list[WorkResult]:
    """Work the lists in turns, the lists nearest the end of the process first, until a round
    works nothing, `rounds` rounds, or the deadline.

    A turn works at most TURN_ITEMS items: a confirmation that a payment batch just opened
    waits for at most one payment turn, not for the payment list to run dry (under steady load
    it never does). A list's batches start at `batch` and double while they come back full, so
    a backlog shares each batch's fixed cost among more items.
    Every projection is caught up once, up front; after that each list's own catch-up at the
    end of its batch serves its next turn, and a list is caught up again only when a list before
    it has recorded outcomes that may open its items. A list stays in the next round while it
    works something (more may be due); with `follow`, or for the sweep, so do the lists the
    worked lists' outcomes open."""
    state = _Rounds({r.name: r for r in projections_catch_up()})
    todo = _nearest_the_end_first(lists)
    for _ in range(rounds):
        avoid, paused = state.refresh(todo)
        passed = [
            todo_list_work(
                list_name=n,
                batch=state.sizes.get(n) or batch,
                grow_to=TURN_ITEMS,
                max_items=TURN_ITEMS,
                deadline=deadline,
                worker=worker,
                caught_up=state.caught_up.pop(registry.get(n).projection_name, None),
                avoid=avoid,
                task_started_at=task_started_at,
                paused=n in paused,
            )
            for n in todo
        ]
        todo = state.next_round(passed, lists=lists, follow=follow)
        if not todo or time.monotonic() >= deadline:
            break
    return list(state.totals.values())


def _watch_and_take_over(
    work: Callable[[], list[WorkResult]], *, lists: list[str], worker: str, deadline: float
) -> list[WorkResult]:
    """Stay while other workers hold leases on these lists; work what a dead one leaves."""
    results: list[WorkResult] = []
    while todo_leases_held_by_others(list_names=lists, worker=worker):
        if time.monotonic() >= deadline:
            # Hand the watch to a fresh task: a Redis broker has no other copy of this one.
            todo_lists_nudge(list_names=lists)
            break
        time.sleep(TAKEOVER_POLL_SECONDS)
        if todo_items_claimable(list_names=lists):
            taken = work()
            results.extend(taken)
            if not any(r.worked for r in taken):
                # Claimable, yet nothing could be claimed: another worker was faster, or the list
                # or the business case is halted. Stop watching; the minute sweep looks again.
                break
    return results


def todo_lists_work(
    *,
    names: list[str] | None = None,
    rounds: int = 1000,
    take_over: bool = False,
    worker: str | None = None,
    started: float | None = None,
    follow: bool = False,
) -> list[WorkResult]:
    """Catch up every projection and work the lists until nothing is due (an outcome may open
    an item on the next list), in at most `rounds` rounds of one batch per list (_work_rounds).

    With `follow` (the nudge tasks), named lists that did work are followed by the lists their
    outcomes open, in the same task.

    With `take_over` (the cluster's tasks), a task that is done stays while other workers hold
    leases on these lists, until its deadline: if a holder dies, its lease runs out within
    TODO_LEASE_SECONDS and this task takes the items over, instead of leaving them to the minute
    sweep (a Redis broker loses the dead worker's own task). A live holder's heartbeat keeps its
    lease, and it releases the items when done, which ends the wait.
    """
    deadline = work_deadline()  # one budget for the whole task, however many lists and rounds
    worker = worker or worker_id()
    lists = names or registry.names()
    # Named lists (a nudge) are worked until nothing is due, and with `follow` so are the lists
    # their outcomes open; the sweep works every list until nothing moves.
    task_started_at = datetime.datetime.fromtimestamp(started or time.time(), tz=datetime.UTC)
    work = functools.partial(
        _work_rounds,
        lists=lists,
        rounds=rounds,
        deadline=deadline,
        worker=worker,
        task_started_at=task_started_at,
        follow=bool(names and follow),
    )
    results = work()
    if take_over:
        results += _watch_and_take_over(work, lists=lists, worker=worker, deadline=deadline)
    if any(r.worked for r in results):
        # The outcomes just recorded must reach the read models too, not wait for the next sweep.
        projections_catch_up()
    return results

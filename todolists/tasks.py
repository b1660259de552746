"""django-q2 entry points. Thin: they call the runner."""

import time

from todolists import nudge
from todolists.lists import registry as todo_lists
from todolists.runner import todo_lists_work


def work_lists(names: list[str] | None = None) -> str:
    """Work the named lists now (the nudge after a command commits), and take over the items of
    a worker that dies meanwhile (see todo_lists_work).

    A task held back by an older transaction still running never works blind (it would see
    nothing, report "0 worked" and drop the wake-up): it waits until readers see what nudged it,
    or hands the nudge on to a fresh task at the deadline.
    """
    started = time.time()
    trigger = nudge.todo_lists_nudge_started(list_names=names)
    if not nudge.todo_log_wait_visible(trigger=trigger, seconds=nudge.VISIBLE_WAIT_SECONDS):
        lists = names or sorted(todo_lists.names())
        nudge.todo_lists_nudge(list_names=lists, trigger=trigger)
        return f"held back: transaction {trigger} not yet visible; nudge handed on for {', '.join(lists)}"
    results = todo_lists_work(names=names, take_over=True, started=started, follow=True)
    return ", ".join(f"{r.list_name}: {r.worked} worked, {r.failed} failed" for r in results)


def sweep() -> str:
    """The safety net, every minute: catch up all projections and work every list."""
    return work_lists(None)

"""django-q2 entry points. Thin: they call the runner."""

from todolists.nudge import todo_lists_nudge_started
from todolists.runner import todo_lists_work


def work_lists(names: list[str] | None = None) -> str:
    """Work the named lists now (the nudge after a command commits), and take over the items of
    a worker that dies meanwhile (see todo_lists_work)."""
    todo_lists_nudge_started(list_names=names)
    results = todo_lists_work(names=names, take_over=True)
    return ", ".join(f"{r.list_name}: {r.worked} worked, {r.failed} failed" for r in results)


def sweep() -> str:
    """The safety net, every minute: catch up all projections and work every list."""
    return work_lists(None)

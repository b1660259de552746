"""django-q2 entry points. Thin: they call the runner."""

from todolists.automation import todo_lists_work


def work_lists(names: list[str] | None = None) -> str:
    """Work the named lists now (the nudge after a command commits)."""
    results = todo_lists_work(names=names)
    return ", ".join(f"{r.list_name}: {r.worked} worked, {r.failed} failed" for r in results)


def sweep() -> str:
    """The safety net, every minute: catch up all projections and work every list."""
    return work_lists(None)

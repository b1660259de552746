from collections.abc import Callable

from django.apps import AppConfig


class TodoListsConfig(AppConfig):
    name = "todolists"
    verbose_name = "TODO lists"

    enqueue: Callable[..., object] | None = None
    """How the nudge hands a task to the cluster, async_task's signature. None: django-q2's
    `async_task` (todolists/nudge.py, todo_task_enqueue); tests install a recording one."""

    def ready(self) -> None:
        from eventstore.store import append_hook_register
        from todolists import checks, conf  # noqa: F401  (system checks)
        from todolists.events import TodoAttemptFailed, TodoItemParked, TodoRetryRequested
        from todolists.nudge import todo_lists_nudge_after_append
        from todolists.process import Step, registry

        # Every append that opens an item nudges the cluster: no command has to remember to.
        append_hook_register(todo_lists_nudge_after_append)
        # For the process map: the runner's own records on every list, and the operator actions.
        registry.register(
            Step(
                name="Runner: a failed attempt",
                kind="automation",
                records=(TodoAttemptFailed.event_type, TodoItemParked.event_type),
                actor="automation",
            )
        )
        registry.register(Step(name="Retry now", records=(TodoRetryRequested.event_type,), actor="operator"))
        registry.register(Step(name="Park", records=(TodoItemParked.event_type,), actor="operator"))

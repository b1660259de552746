from collections.abc import Callable

from django.apps import AppConfig


class TodoListsConfig(AppConfig):
    name = "todolists"
    verbose_name = "TODO lists"

    enqueue: Callable[..., object] | None = None
    """How the nudge hands a task to the cluster, async_task's signature. None: django-q2's
    `async_task` (todolists/nudge.py, todo_task_enqueue); tests install a recording one."""

    def ready(self) -> None:
        from django_q.signals import post_spawn

        from eventstore.store import append_hook_register
        from todolists import checks, conf, pause  # noqa: F401  (system checks, pause projection)
        from todolists.events import TodoAttemptFailed, TodoItemParked, TodoRetryRequested
        from todolists.heartbeat import worker_heartbeat_start
        from todolists.nudge import todo_lists_nudge_after_append
        from todolists.pause import TodoListPaused, TodoListResumed
        from todolists.process import Step, registry

        # Every append that opens an item nudges the cluster: no command has to remember to.
        append_hook_register(todo_lists_nudge_after_append)
        # Each qcluster worker process reports that it is alive (todolists/heartbeat.py).
        post_spawn.connect(worker_heartbeat_start, dispatch_uid="todolists.worker_heartbeat")
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
        registry.register(
            Step(
                name="Pause / resume a list",
                records=(TodoListPaused.event_type, TodoListResumed.event_type),
                actor="operator",
            )
        )

from django.apps import AppConfig


class TodoListsConfig(AppConfig):
    name = "todolists"
    verbose_name = "TODO lists"

    def ready(self) -> None:
        from django_q.signals import post_spawn

        from eventstore.store import append_hook_register
        from todolists import checks, events, pause  # noqa: F401  (system checks, event types, pause projection)
        from todolists.heartbeat import worker_heartbeat_start
        from todolists.nudge import todo_lists_nudge_after_append
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
                records=("TodoAttemptFailed", "TodoItemParked"),
                actor="automation",
            )
        )
        registry.register(Step(name="Retry now", records=("TodoRetryRequested",), actor="operator"))
        registry.register(Step(name="Park", records=("TodoItemParked",), actor="operator"))
        registry.register(
            Step(
                name="Pause / resume a list", records=("TodoListPaused", "TodoListResumed"), actor="operator"
            )
        )

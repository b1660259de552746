from django.apps import AppConfig


class TodoListsConfig(AppConfig):
    name = "todolists"
    verbose_name = "TODO lists"

    def ready(self) -> None:
        from todolists import events  # noqa: F401  (registers the runner's event types)
        from todolists.process import Step, registry

        registry.register(Step(name="Retry now", records=("TodoRetryRequested",), actor="operator"))
        registry.register(Step(name="Park", records=("TodoItemParked",), actor="operator"))

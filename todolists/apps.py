from django.apps import AppConfig


class TodoListsConfig(AppConfig):
    name = "todolists"
    verbose_name = "TODO lists"

    def ready(self) -> None:
        from todolists import events  # noqa: F401  (registers the runner's event types)

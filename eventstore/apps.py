from django.apps import AppConfig


class EventStoreConfig(AppConfig):
    name = "eventstore"
    verbose_name = "Event log"

    def ready(self) -> None:
        from eventstore import checks, conf  # noqa: F401  (registers the system checks)

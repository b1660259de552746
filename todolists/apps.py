from django.apps import AppConfig


class TodoListsConfig(AppConfig):
    name = "todolists"
    verbose_name = "TODO lists"

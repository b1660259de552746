"""System checks for list declarations: the events that open and close a list are registered and
carry the list's key field (see eventstore/checks.py for projections in general)."""

from django.core import checks

from eventstore.events import registered_types
from todolists.conf import SWEEP_SECONDS
from todolists.lists import registry


@checks.register()
def lists_name_registered_types(app_configs: object = None, **kwargs: object) -> list[checks.CheckMessage]:
    known = registered_types()
    errors: list[checks.CheckMessage] = []
    for todo in registry.all():
        for role, names in (
            ("opened_by", todo.opened_by),
            ("closed_by", todo.closed_by),
            ("records", todo.records),
        ):
            for name in names:
                cls = known.get(name)
                if cls is None:
                    errors.append(
                        checks.Error(
                            f"TODO list {todo.name!r}: {role} names {name!r}, which is not a registered "
                            "event type.",
                            hint=f"Registered types: {', '.join(sorted(known))}.",
                            id="todolists.E001",
                        )
                    )
                elif role != "records" and todo.key_field not in cls.__struct_fields__:
                    errors.append(
                        checks.Error(
                            f"TODO list {todo.name!r}: {name} has no field {todo.key_field!r} (the "
                            "list's key_field).",
                            id="todolists.E002",
                        )
                    )
    return errors


@checks.register()
def lists_stuck_after_valid(app_configs: object = None, **kwargs: object) -> list[checks.CheckMessage]:
    return [
        checks.Error(
            f"TODO list {todo.name!r}: stuck_after is {todo.stuck_after}, below the sweep interval "
            f"({SWEEP_SECONDS} s): the list would be reported stuck while it waits for the next sweep.",
            hint=f"Declare stuck_after of {SWEEP_SECONDS} s or more, or leave it out (TODO_STUCK_AFTER_SECONDS).",
            id="todolists.E003",
        )
        for todo in registry.all()
        if todo.stuck_after is not None and todo.stuck_after.total_seconds() < SWEEP_SECONDS
    ]

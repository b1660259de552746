"""The words of the debug pages, explained once: shown as tooltips on the column headers and as a
glossary at the foot of the dashboard."""

from typing import Any

GLOSSARY: dict[str, tuple[str, str]] = {
    # key: (term as shown, what it means)
    "projection": (
        "projection",
        "A table built only from the event log (orders, payments, each TODO list); it can be rebuilt "
        "from the log at any time.",
    ),
    "head": ("log head", "The position of the newest event in the log."),
    "checkpoint": (
        "checkpoint",
        "The position of the last event a projection has applied; it reads on from there.",
    ),
    "lag": (
        "lag",
        "How many events (counted in events, not time) a projection has not applied yet: log head "
        "minus checkpoint. Its numbers may be behind by that much.",
    ),
    "lease": (
        "lease",
        "A worker's claim on an item while it works it, renewed while it runs. An expired lease means "
        "the worker stopped (crashed or killed) while holding the item; another worker takes it over.",
    ),
    "parked": (
        "parked",
        "An item the automation gave up on after its last allowed attempt, or that an operator "
        "parked: nothing works it until someone retries it.",
    ),
    "due": ("due", "Open and not waiting out a backoff: the next worker takes it."),
}


def glossary_context() -> dict[str, Any]:
    return {
        "glossary": {key: meaning for key, (_, meaning) in GLOSSARY.items()},
        "glossary_terms": [(term, meaning) for term, meaning in GLOSSARY.values()],
    }

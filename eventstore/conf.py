"""The eventstore app's settings in one place: each name, its default, and the checks run at start.

config/settings.py reads them from the environment (README, Configuration). Code reads them
through `conf`, at the time of use, so a test's override is seen at once.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks

DEFAULTS: dict[str, int] = {
    # More parked business cases than this in one projection looks like a bug, not bad data: halt.
    "EVENTSTORE_PARKED_CASES_LIMIT": 100,
}


class EventStoreSettings:
    """Typed access to the settings above."""

    @property
    def parked_cases_limit(self) -> int:
        return int(
            getattr(settings, "EVENTSTORE_PARKED_CASES_LIMIT", DEFAULTS["EVENTSTORE_PARKED_CASES_LIMIT"])
        )


conf = EventStoreSettings()


@checks.register()
def eventstore_settings_valid(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """A limit below 1 would halt a projection on its first poison event, as if parking did not exist."""
    if conf.parked_cases_limit >= 1:
        return []
    return [
        checks.Error(
            f"EVENTSTORE_PARKED_CASES_LIMIT is {conf.parked_cases_limit}; it must be at least 1.",
            hint="The number of business cases one projection may park before it halts as a whole (default 100).",
            id="eventstore.E101",
        )
    ]

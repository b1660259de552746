"""The todolists app's settings in one place: each name, its default, and the checks run at start.

config/settings.py reads them from the environment (README, Configuration). Code reads them
through `conf`, at the time of use, so a test's override is seen at once.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks

# The minute sweep (django-q2 schedule, migration 0002): schedules fire at most once a minute.
SWEEP_SECONDS = 60

DEFAULTS: dict[str, int | float | bool] = {
    "TODO_MAX_ATTEMPTS": 5,  # failed attempts before an item is parked
    "TODO_BACKOFF_SECONDS": 5.0,  # first retry delay, doubled per attempt, capped at an hour
    "TODO_LEASE_SECONDS": 10,  # a claim's lease; a heartbeat renews it every third of that
    "TODO_NUDGE": True,  # enqueue a task right after a command commits (latency)
    "TODO_NUDGE_COALESCE_SECONDS": 5.0,  # a queued nudge older than this is queued again
    "TODO_STUCK_AFTER_SECONDS": 300,  # an item due for longer marks its list stuck
    # The verdict: a list is failing when more than FAILING_RATE of its last FAILING_ATTEMPTS
    # attempts within FAILING_WINDOW failed (and at least FAILING_MIN_ATTEMPTS of them).
    "TODO_FAILING_RATE": 0.5,
    "TODO_FAILING_ATTEMPTS": 10,
    "TODO_FAILING_WINDOW_SECONDS": 300,
    "TODO_FAILING_MIN_ATTEMPTS": 3,
    "TODO_HEARTBEAT_SECONDS": 5.0,  # each qcluster worker beats this often
    "TODO_WORKER_DEAD_AFTER_SECONDS": 15.0,  # a worker silent this long is dead
    "TODO_NO_WORKER_AFTER_SECONDS": 30.0,  # work waiting this long with no live worker is failing
    "TODO_NOT_MOVING_AFTER_SECONDS": 60.0,  # a projection leaving an event unread this long is failing
    # The dashboard and the map compute their numbers once per this many seconds for every viewer
    # (todolists/live.py), and refresh themselves as often; 0 computes per request.
    "TODO_LIVE_INTERVAL_SECONDS": 5.0,
}


def _get(name: str) -> Any:
    return getattr(settings, name, DEFAULTS[name])


class TodoSettings:
    """Typed access to the settings above."""

    @property
    def max_attempts(self) -> int:
        return int(_get("TODO_MAX_ATTEMPTS"))

    @property
    def backoff_seconds(self) -> float:
        return float(_get("TODO_BACKOFF_SECONDS"))

    @property
    def lease_seconds(self) -> float:
        return float(_get("TODO_LEASE_SECONDS"))

    @property
    def nudge(self) -> bool:
        return bool(_get("TODO_NUDGE"))

    @property
    def nudge_coalesce_seconds(self) -> float:
        return float(_get("TODO_NUDGE_COALESCE_SECONDS"))

    @property
    def stuck_after_seconds(self) -> float:
        return float(_get("TODO_STUCK_AFTER_SECONDS"))

    @property
    def live_interval_seconds(self) -> float:
        return float(_get("TODO_LIVE_INTERVAL_SECONDS"))

    @property
    def failing_rate(self) -> float:
        return float(_get("TODO_FAILING_RATE"))

    @property
    def failing_attempts(self) -> int:
        return int(_get("TODO_FAILING_ATTEMPTS"))

    @property
    def failing_window_seconds(self) -> float:
        return float(_get("TODO_FAILING_WINDOW_SECONDS"))

    @property
    def failing_min_attempts(self) -> int:
        return int(_get("TODO_FAILING_MIN_ATTEMPTS"))

    @property
    def heartbeat_seconds(self) -> float:
        return float(_get("TODO_HEARTBEAT_SECONDS"))

    @property
    def worker_dead_after_seconds(self) -> float:
        return float(_get("TODO_WORKER_DEAD_AFTER_SECONDS"))

    @property
    def no_worker_after_seconds(self) -> float:
        return float(_get("TODO_NO_WORKER_AFTER_SECONDS"))

    @property
    def not_moving_after_seconds(self) -> float:
        return float(_get("TODO_NOT_MOVING_AFTER_SECONDS"))


conf = TodoSettings()


def _error(message: str, hint: str, n: int) -> checks.Error:
    return checks.Error(message, hint=hint, id=f"todolists.E1{n:02d}")


@checks.register()
def todo_settings_valid(app_configs: object = None, **kwargs: object) -> list[checks.CheckMessage]:
    """Values that would make the runner spin, never retry, or report every list stuck."""
    errors: list[checks.CheckMessage] = []
    if conf.lease_seconds <= 0:
        errors.append(
            _error(
                f"TODO_LEASE_SECONDS is {conf.lease_seconds:g}: a lease must last more than 0 s "
                "(the heartbeat renews it every third of a lease, so 0 makes it spin).",
                "Leave it unset (10 s), or set a few seconds.",
                1,
            )
        )
    if conf.backoff_seconds < 0:
        errors.append(
            _error(
                f"TODO_BACKOFF_SECONDS is {conf.backoff_seconds:g}: a backoff cannot be negative.",
                "Leave it unset (5 s), or set 0 to retry at once.",
                2,
            )
        )
    if conf.max_attempts < 1:
        errors.append(
            _error(
                f"TODO_MAX_ATTEMPTS is {conf.max_attempts}: an item needs at least one attempt.",
                "Leave it unset (5).",
                3,
            )
        )
    if conf.nudge_coalesce_seconds < 0:
        errors.append(
            _error(
                f"TODO_NUDGE_COALESCE_SECONDS is {conf.nudge_coalesce_seconds:g}: it cannot be negative.",
                "Leave it unset (5 s).",
                4,
            )
        )
    if conf.stuck_after_seconds < SWEEP_SECONDS:
        errors.append(
            _error(
                f"TODO_STUCK_AFTER_SECONDS is {conf.stuck_after_seconds:g}, below the sweep interval "
                f"({SWEEP_SECONDS} s): a list would be reported stuck while it waits for the next sweep.",
                f"Set it to {SWEEP_SECONDS} or more (default {DEFAULTS['TODO_STUCK_AFTER_SECONDS']}).",
                5,
            )
        )
    if conf.heartbeat_seconds <= 0 or conf.worker_dead_after_seconds <= conf.heartbeat_seconds:
        errors.append(
            _error(
                f"TODO_HEARTBEAT_SECONDS is {conf.heartbeat_seconds:g} and TODO_WORKER_DEAD_AFTER_SECONDS "
                f"{conf.worker_dead_after_seconds:g}: a worker must beat (more than 0 s apart) more often "
                "than it is declared dead.",
                "Leave them unset (5 s and 15 s).",
                6,
            )
        )
    if not 0 <= conf.failing_rate <= 1:
        errors.append(
            _error(
                f"TODO_FAILING_RATE is {conf.failing_rate:g}: a share of attempts, from 0 to 1.",
                "Leave it unset (0.5).",
                7,
            )
        )
    return errors

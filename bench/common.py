"""What every benchmark shares: its own database, Django set up on it, timing, and result rows.

Each benchmark runs in its own process on its own database (bench_<name>), so Django is set up
once per benchmark with that database, and nothing one benchmark leaves behind slows the next.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable
from typing import Any

import psycopg

DEFAULT_SERVER = "postgres://root@127.0.0.1:5432/root"


def server_url() -> str:
    return os.environ.get("DATABASE_URL") or DEFAULT_SERVER


def db_url(name: str) -> str:
    return server_url().rsplit("/", 1)[0] + "/" + name


def db_create(name: str) -> str:
    with psycopg.connect(server_url(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return db_url(name)


def db_exists(name: str) -> bool:
    with psycopg.connect(server_url(), autocommit=True) as conn:
        return bool(conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone())


def db_drop(name: str) -> None:
    with psycopg.connect(server_url(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def bench_env(url: str, **extra: str) -> dict[str, str]:
    """The environment of a process that runs the project on the bench database."""
    return {
        # The broker is the benchmark's choice (REDIS_URL in `extra`), never the caller's shell's.
        **{k: v for k, v in os.environ.items() if k != "REDIS_URL"},
        "DATABASE_URL": url,
        "SECRET_KEY": os.environ.get("SECRET_KEY") or "bench-only-not-a-secret",
        "DJANGO_SETTINGS_MODULE": "config.settings",
        # The commands' nudge enqueues a task; inline benchmarks have no cluster to run it.
        "TODO_NUDGE": "false",
        "LOG_LEVEL": "ERROR",
        **extra,
    }


def django_setup(url: str, *, migrate: bool = True, **extra: str) -> None:
    os.environ.update(bench_env(url, **extra))
    if "REDIS_URL" not in extra:
        os.environ.pop("REDIS_URL", None)
    import django

    django.setup()
    if migrate:
        from django.core.management import call_command

        call_command("migrate", verbosity=0)


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


@dataclasses.dataclass
class Target:
    """A target from issue 7 (or 6): on the ratio ours/baseline, or on the measured value."""

    on: str  # "ratio" or "value"
    minimum: float | None = None
    maximum: float | None = None

    def text(self) -> str:
        what = "x" if self.on == "ratio" else ""
        if self.minimum is not None:
            return f">= {self.minimum:g}{what}"
        return f"<= {self.maximum:g}{what}"

    def met(self, value: float | None) -> bool | None:
        if value is None:
            return None
        if self.minimum is not None:
            return value >= self.minimum
        assert self.maximum is not None, "a target has a minimum or a maximum"
        return value <= self.maximum


@dataclasses.dataclass
class Row:
    bench: str
    name: str
    n: int
    value: float
    unit: str
    baseline: float | None = None
    baseline_name: str = ""
    higher_is_better: bool = True
    target: Target | None = None
    note: str = ""
    missed: bool = False  # the target is missed whatever the value (e.g. the cluster fell behind)
    stages: dict[str, tuple[float, float]] | None = None  # stage -> (p50, p99) seconds

    @property
    def ratio(self) -> float | None:
        """ours / baseline as a speed ratio (> 1 means ours is faster), whatever the unit."""
        if self.baseline is None or not self.value or not self.baseline:
            return None
        return self.value / self.baseline if self.higher_is_better else self.baseline / self.value

    @property
    def met(self) -> bool | None:
        if self.target is None:
            return None
        if self.missed:
            return False
        return self.target.met(self.ratio if self.target.on == "ratio" else self.value)

    def as_dict(self) -> dict[str, Any]:
        return {
            "bench": self.bench,
            "name": self.name,
            "n": self.n,
            "value": None if math.isnan(self.value) else round(self.value, 3),  # JSON has no NaN
            "unit": self.unit,
            "baseline": None if self.baseline is None else round(self.baseline, 3),
            "baseline_name": self.baseline_name,
            "ratio": None if self.ratio is None else round(self.ratio, 3),
            "target": self.target.text() if self.target else "",
            "met": self.met,
            "note": self.note,
            **(
                {"stages": {k: [round(v, 3) for v in pq] for k, pq in self.stages.items()}}
                if self.stages
                else {}
            ),
        }


def per_second(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else 0.0


class Deadline:
    """A time budget a benchmark checks between steps, so a slow run stops instead of hanging."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()

    def passed(self) -> bool:
        return self.left() <= 0


def log(message: str) -> None:
    """Progress goes to stderr; stdout carries the table and the JSON."""
    import sys

    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class profiled:
    """With --profile, cProfile the block and print its top entries to stderr."""

    def __init__(self, enabled: bool, title: str) -> None:
        self.enabled, self.title = enabled, title

    def __enter__(self) -> None:
        if self.enabled:
            import cProfile

            self.profiler = cProfile.Profile()
            self.profiler.enable()

    def __exit__(self, *exc: object) -> None:
        if not self.enabled:
            return
        import io
        import pstats
        import sys

        self.profiler.disable()
        for key in ("tottime", "cumulative"):
            out = io.StringIO()
            pstats.Stats(self.profiler, stream=out).sort_stats(key).print_stats(25)
            print(f"--- profile: {self.title} (by {key}) ---\n{out.getvalue()}", file=sys.stderr)

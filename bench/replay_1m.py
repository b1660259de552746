"""Replay of the whole log (orders + payments + lists events of ~270k orders, 1,000,000 events;
50,000 in quick mode): `manage.py replay_projections --jobs 2` in a subprocess, wall time and peak
RSS (of the command's process and its children).

The log is written by bulk SQL (bench/seed.py). The replay is stopped at the time budget, and the
result then says which projections it finished.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import seed
from bench.common import Row, Target, bench_env, log

NAME = "replay_1m"
BUDGET = {"quick": 240, "full": 360}
SETTINGS: dict[str, str] = {}
ROOT = Path(__file__).resolve().parent.parent


def events_for(quick: bool) -> int:
    return 50_000 if quick else 1_000_000


def replay_subprocess(url: str, timeout: float) -> tuple[float, float, bool, str]:
    """(seconds, peak RSS in MB, finished, its output)."""
    with tempfile.TemporaryFile("w+") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "replay_projections", "--jobs", "2"],
            cwd=ROOT, env=bench_env(url), stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
        finished = True
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - start > timeout:
                finished = False
                os.kill(proc.pid, signal.SIGTERM)
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.2)  # polling the child's exit, not waiting for a worker
        elapsed = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)  # already reaped by wait4
        out.seek(0)
        output = out.read()
    if finished and proc.returncode != 0:
        raise SystemExit(f"replay_projections failed ({proc.returncode}):\n{output[-2000:]}")
    return elapsed, usage.ru_maxrss / 1024, finished, output


def run(*, url: str, quick: bool, **_) -> list[Row]:
    from eventstore.projections import registry

    target = events_for(quick)
    start = time.perf_counter()
    head = seed.log_ensure(events=target)
    log(f"replay_1m: log holds {head} events (seeding took {time.perf_counter() - start:.0f} s)")
    timeout = BUDGET["quick" if quick else "full"] - 60
    seconds, rss_mb, finished, output = replay_subprocess(url, timeout)
    done = [line.split(":")[0] for line in output.splitlines() if ": applied " in line]
    names = registry.names()
    running = next((n for n in names if n not in done), "")
    note = (
        f"all {len(done)} projections replayed"
        if finished
        else f"STOPPED at {timeout} s: replayed {len(done)} of {len(names)} projections"
        f" ({', '.join(done) or 'none'}); {running} was still in its replay transaction"
    )
    log(f"replay_1m: {seconds:.1f} s, peak RSS {rss_mb:.0f} MB; {note}")
    return [
        Row(NAME, f"replay_projections, {head:,} events: wall time", head, seconds, "s",
            higher_is_better=False, target=Target("value", maximum=60), note=note),
        Row(NAME, f"replay_projections, {head:,} events: peak RSS", head, rss_mb, "MB",
            higher_is_better=False, target=Target("value", maximum=200), note="wait4() rusage of the subprocess"),
    ]  # fmt: skip

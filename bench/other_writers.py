"""Write transactions held open beside the process under test (issue 15's faults): one long
transaction, or a churn of overlapping ones, each in a subprocess of its own.

Subprocesses, not threads: the benchmarks fork their placers (bench/cluster.py's place_at), and a
fork must not copy a thread that holds a connection. Each subprocess prints one JSON line when its
(first) transaction is open and one when it is done, so the benchmark knows when the fault starts
and ends by the writer's own clock (time.time(), the same as the log's recorded_at up to NTP).

    python -m bench.other_writers hold URL SECONDS [--idle]   # INSERT, then stay in the transaction
    python -m bench.other_writers churn URL SECONDS EVERY OPEN_FOR   # a new transaction every EVERY s
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg

from bench.common import db_create, db_drop

ROOT = Path(__file__).resolve().parent.parent
SCRATCH = "CREATE TABLE IF NOT EXISTS bench_scratch (x bigint, at timestamptz DEFAULT clock_timestamp())"


def _say(**what: Any) -> None:
    print(json.dumps(what), flush=True)


def hold(url: str, seconds: float, *, idle: bool) -> None:
    """One write transaction open for `seconds`: active in pg_sleep, or idle in transaction."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SCRATCH)
        conn.execute("BEGIN")
        xid = conn.execute("INSERT INTO bench_scratch (x) VALUES (1) RETURNING pg_current_xact_id()::text")
        [opened_xid] = xid.fetchall()
        _say(opened=time.time(), xid=int(opened_xid[0]), pid=conn.info.backend_pid)
        if idle:
            time.sleep(seconds)  # idle in transaction, as a forgotten psql session
        else:
            conn.execute("SELECT pg_sleep(%s)", [seconds])
        conn.execute("COMMIT")
        _say(ended=time.time())


def churn(url: str, seconds: float, every: float, open_for: float) -> None:
    """A write transaction committed every `every` s, each open `open_for` s, from a thread pool
    with one connection per thread (several overlap); until `seconds` pass or SIGTERM."""
    local, lock = threading.local(), threading.Lock()
    stats = {"committed": 0, "open": 0, "max_open": 0, "late": 0}
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SCRATCH)

    def one() -> None:
        if not hasattr(local, "conn"):
            local.conn = psycopg.connect(url)
        with lock:
            stats["open"] += 1
            stats["max_open"] = max(stats["max_open"], stats["open"])
        with local.conn.transaction():
            local.conn.execute("INSERT INTO bench_scratch (x) VALUES (2)")
            local.conn.execute("SELECT pg_sleep(%s)", [open_for])
        with lock:
            stats["open"] -= 1
            stats["committed"] += 1

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    workers = int(open_for / every) * 2 + 2
    start = time.time()
    _say(opened=start, threads=workers)
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        k = 0
        while not stop.is_set() and time.time() - start < seconds:
            with lock:
                stats["late"] += stats["open"] >= workers  # no free thread: the rate slips
            pool.submit(one)
            k += 1
            stop.wait(max(0.0, start + k * every - time.time()))  # pacing at the fixed rate
    _say(ended=time.time(), started=k, seconds=round(time.time() - start, 1), **stats)


class Writer:
    """A running writer subprocess: what it said when its transaction opened, and at the end."""

    def __init__(self, args: list[str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.other_writers", *args],
            cwd=ROOT, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line:
            raise SystemExit(f"the writer {args[0]} exited before its transaction opened")
        self.opened: dict[str, Any] = json.loads(line)
        self.ended: dict[str, Any] = {}

    def running(self) -> bool:
        return self.proc.poll() is None

    def finish(self, *, stop: bool) -> dict[str, Any]:
        if stop and self.running():
            self.proc.terminate()  # our own subprocess: the churn stops at its next submit
        out, _ = self.proc.communicate(timeout=120)
        lines = [json.loads(x) for x in out.splitlines() if x.strip()]
        self.ended = lines[-1] if lines else {}
        return self.ended


@contextlib.contextmanager
def held_open(url: str, seconds: float, *, idle: bool = False) -> Iterator[Writer]:
    """A write transaction open in `url` for `seconds`; waits for its end on leaving."""
    writer = Writer(["hold", url, str(seconds), *(["--idle"] * idle)])
    try:
        yield writer
    finally:
        writer.finish(stop=False)


@contextlib.contextmanager
def churning(url: str, seconds: float, *, every: float, open_for: float) -> Iterator[Writer]:
    """Overlapping write transactions in `url` until the block ends (or `seconds` pass)."""
    writer = Writer(["churn", url, str(seconds), str(every), str(open_for)])
    try:
        yield writer
    finally:
        writer.finish(stop=True)


@contextlib.contextmanager
def other_database(url: str) -> Iterator[str]:
    """Another database on the server of `url` (the bench database), dropped at the end."""
    name = url.rsplit("/", 1)[1] + "_other"
    try:
        yield db_create(name)
    finally:
        db_drop(name)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="what", required=True)
    h = sub.add_parser("hold")
    h.add_argument("url")
    h.add_argument("seconds", type=float)
    h.add_argument("--idle", action="store_true")
    c = sub.add_parser("churn")
    for name in ("url", "seconds", "every", "open_for"):
        c.add_argument(name, type=str if name == "url" else float)
    args = parser.parse_args()
    if args.what == "hold":
        hold(args.url, args.seconds, idle=args.idle)
    else:
        churn(args.url, args.seconds, args.every, args.open_for)


if __name__ == "__main__":
    main()

"""Benchmarks: the whole throughput story of issue 7, as ratios to baselines measured in the same run.

    DATABASE_URL=postgres://root@127.0.0.1:5432/root .venv/bin/python bench/run.py [--quick]
        [--only NAME[,NAME]] [--json-out FILE] [--keep] [--profile]

DATABASE_URL names the server (any database on it): each benchmark creates its own database
bench_<name> there, runs in its own process, and drops it at the end unless --keep (replay_1m and
dashboard share bench_log). Benchmarks: append, catchup, pipeline, cluster, dashboard, and
replay_1m (slow: only with --only); issue 15's faults, only with --only: other_db_tx (a long
write transaction in another database, and in ours) and soak (orders every 3 s beside another
database's churn of write transactions). --quick uses small sizes for a smoke run. The machine is
shared and noisy: read the ratios, not the absolute rates. Prints a table, then the JSON document.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import Row, Target, db_create, db_drop, db_exists, db_url, django_setup, log  # noqa: E402

BENCHMARKS = (
    "append", "catchup", "pipeline", "cluster", "cluster_redis", "dashboard", "replay_1m", "during_replay",
    "live_refresh", "other_db_tx", "soak",
)  # fmt: skip
DEFAULT = ("append", "catchup", "pipeline", "cluster", "cluster_redis", "dashboard")
SHARED_DB = {"replay_1m": "bench_log", "dashboard": "bench_log"}
MODULES = {"replay_1m": "bench.replay_1m"}


def module(name: str):
    return importlib.import_module(MODULES.get(name, f"bench.{name}"))


def database(name: str) -> str:
    # BENCH_DB_PREFIX keeps two checkouts benchmarking on one server apart.
    prefix = os.environ.get("BENCH_DB_PREFIX", "bench_")
    return prefix + SHARED_DB.get(name, f"bench_{name}").removeprefix("bench_")


def child(args: argparse.Namespace) -> None:
    """Run one benchmark in this process, on its database, and write its rows as JSON."""
    mod = module(args.child)
    url = db_url(args.db)
    django_setup(url, **mod.SETTINGS)
    rows = mod.run(url=url, quick=args.quick, profile=args.profile)
    Path(args.child_out).write_text(json.dumps([r.as_dict() for r in rows]))


def run_one(name: str, args: argparse.Namespace, created: set[str]) -> list[dict]:
    db = database(name)
    if db not in created:
        db_create(db)
        created.add(db)
    budget = module(name).BUDGET["quick" if args.quick else "full"]
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        command = [sys.executable, str(Path(__file__).resolve()), "--child", name, "--db", db,
                   "--child-out", out.name]  # fmt: skip
        command += ["--quick"] * args.quick + ["--profile"] * args.profile
        start = time.perf_counter()
        log(f"{name}: start on database {db} (budget {budget} s)")
        try:
            # The benchmark bounds itself; this is the backstop (its seeding and setup on top).
            done = subprocess.run(command, cwd=ROOT, timeout=budget + 300, check=False)
        except subprocess.TimeoutExpired:
            return [_failed(name, f"killed after {budget + 300} s")]
        log(f"{name}: done in {time.perf_counter() - start:.0f} s")
        if done.returncode != 0:
            return [_failed(name, f"exit code {done.returncode} (see stderr above)")]
        return json.loads(Path(out.name).read_text() or "[]")


def _failed(name: str, why: str) -> dict:
    return Row(
        name, f"{name}: FAILED, {why}", 0, 0.0, "", target=Target("value", maximum=0), missed=True
    ).as_dict()


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if unit in ("events/s", "orders/s") or abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"


def table(rows: list[dict]) -> str:
    header = ("benchmark", "n", "ours", "unit", "baseline", "ours/baseline", "target", "met")
    lines = [header]
    for r in rows:
        met = {True: "yes", False: "NO", None: ""}[r["met"]]
        ratio = f"{r['ratio']:.2f}x" if r["ratio"] is not None else "-"
        lines.append((r["name"], str(r["n"]), "none" if r["value"] is None else _fmt(r["value"], r["unit"]), r["unit"],
                      _fmt(r["baseline"], r["unit"]), ratio, r["target"], met))  # fmt: skip
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = [" | ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths, strict=True)))
            for line in lines]  # fmt: skip
    text.insert(1, "-+-".join("-" * w for w in widths))
    notes = [f"  {r['name']}: {r['note']}" for r in rows if r["note"]]
    baselines = sorted({f"  {r['baseline_name']}" for r in rows if r["baseline_name"]})
    return "\n".join([*text, "", "baselines:", *baselines, "", "notes:", *notes, *stage_table(rows)])


def stage_table(rows: list[dict]) -> list[str]:
    """Where an order's time goes: per run with stages, each stage's p50 / p99 in seconds."""
    staged = [r for r in rows if r.get("stages")]
    if not staged:
        return []
    stages = list(staged[0]["stages"])
    header = ["stage (p50 / p99, s)", *(r["name"].split(", placed")[0] for r in staged)]
    lines = [header] + [
        [stage, *(f"{r['stages'][stage][0]:.3f} / {r['stages'][stage][1]:.3f}" for r in staged)]
        for stage in stages
    ]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = [" | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in lines]
    return ["", "stages:", *text]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", help=f"comma-separated benchmarks, from: {', '.join(BENCHMARKS)}")
    parser.add_argument("--quick", action="store_true", help="small sizes, a smoke run of a few minutes")
    parser.add_argument("--json-out", help="also write the JSON document to this file")
    parser.add_argument("--keep", action="store_true", help="keep the bench_* databases")
    parser.add_argument("--profile", action="store_true", help="cProfile the inline pipeline and the replay")
    parser.add_argument("--child", choices=BENCHMARKS, help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--child-out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not (os.environ.get("DATABASE_URL") or "postgres").startswith("postgres"):
        parser.error("DATABASE_URL must name a PostgreSQL server (postgres://...)")
    if args.child:
        child(args)
        return
    selected = [n.strip() for n in args.only.split(",")] if args.only else list(DEFAULT)
    unknown = set(selected) - set(BENCHMARKS)
    if unknown:
        parser.error(
            f"unknown benchmark(s) {', '.join(sorted(unknown))}; choose from {', '.join(BENCHMARKS)}"
        )
    selected.sort(key=BENCHMARKS.index)  # replay_1m before dashboard: the dashboard reuses its data
    selected.sort(key=lambda n: n == "dashboard")
    started = time.time()
    rows: list[dict] = []
    created: set[str] = set()
    try:
        for name in selected:
            rows += run_one(name, args, created)
    finally:
        if not args.keep:
            for db in created:
                if db_exists(db):
                    db_drop(db)
    document = {
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "seconds": round(time.time() - started),
        "mode": "quick" if args.quick else "full",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "benchmarks": rows,
    }
    print(table(rows))
    print(json.dumps(document))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    main()

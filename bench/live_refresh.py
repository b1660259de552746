"""Ten viewers with the dashboard open while the pipeline runs: does live refresh slow it down?

A real qcluster works orders placed at a fixed rate (half of what the cluster keeps up with on
this machine) for a while with nobody watching, then as long again with VIEWERS logged-in
clients each asking for /admin/ every TODO_LIVE_INTERVAL_SECONDS (what an open tab's live
refresh does). Reported: throughput (confirmed orders per second) and placed -> confirmed p99 of
both phases, and their ratios. The dashboard's numbers are computed once per interval for every
viewer (todolists/ui/live.py), so the viewers should cost the pipeline next to nothing.
"""

from __future__ import annotations

import statistics
import threading
import time

from bench.cluster import percentile, place_at, running_cluster, wait_confirmed
from bench.common import Row, Target, bench_env, log

NAME = "live_refresh"
BUDGET = {"quick": 150, "full": 300}
INTERVAL = 5.0
SETTINGS = {
    "TODO_NUDGE": "true",
    "Q_WORKERS": "2",
    "TODO_LIVE_INTERVAL_SECONDS": str(INTERVAL),
    "ALLOWED_HOSTS": "testserver,127.0.0.1,localhost",
    "SECURE_SSL_REDIRECT": "false",
    "DEBUG": "false",
}
VIEWERS = 10
RATE = 15  # orders/s: about half of what the two-worker cluster keeps up with here


def _viewer(stop: threading.Event, renders: list[float], user, offset: float) -> None:
    from django.db import connection
    from django.test import Client

    client = Client()
    client.force_login(user)
    # Tabs are opened at different moments, and live.js refreshes each on its own timer from
    # then (setInterval): the viewers start spread over one interval, not all at once.
    stop.wait(offset)
    try:
        while not stop.is_set():
            start = time.perf_counter()
            if client.get("/admin/").status_code != 200:
                raise SystemExit("/admin/ did not answer 200")
            renders.append(time.perf_counter() - start)
            stop.wait(INTERVAL)  # what the page's refresh timer does between fetches
    finally:
        connection.close()


def _phase(rate: float, seconds: float) -> tuple[float, float, float, int]:
    start = time.time()
    ids, _ = place_at(rate, seconds)
    latencies = wait_confirmed(ids, 30)
    elapsed = time.time() - start
    p50 = statistics.median(latencies) if latencies else float("nan")
    return len(latencies) / elapsed, p50, percentile(latencies, 99) if latencies else float("nan"), len(ids)


def run(*, url: str, quick: bool, **_) -> list[Row]:
    from django.contrib.auth import get_user_model

    seconds = 5 if quick else 20
    user = get_user_model().objects.create_superuser("bench-viewer", "v@example.com", "bench-only")
    with running_cluster(bench_env(url, **SETTINGS)):
        alone = _phase(RATE, seconds)
        log(
            f"live_refresh: nobody watching: {alone[0]:.1f} confirmed/s, p50 {alone[1]:.3f} s, p99 {alone[2]:.3f} s"
        )
        stop, renders = threading.Event(), list[float]()
        viewers = [
            threading.Thread(target=_viewer, args=(stop, renders, user, i * INTERVAL / VIEWERS))
            for i in range(VIEWERS)
        ]
        for v in viewers:
            v.start()
        try:
            watched = _phase(RATE, seconds)
        finally:
            stop.set()
            for v in viewers:
                v.join(timeout=60)
        log(
            f"live_refresh: {VIEWERS} viewers: {watched[0]:.1f} confirmed/s, p50 {watched[1]:.3f} s, p99 {watched[2]:.3f} s"
        )
    lost = 1 - watched[0] / alone[0]
    growth = watched[2] / alone[2]
    note = (f"{RATE} orders/s for {seconds} s per phase; {VIEWERS} viewers each fetching /admin/ every {INTERVAL:.0f} s:"
            f" {len(renders)} renders, median {statistics.median(renders) * 1000:.0f} ms;"
            f" throughput {alone[0]:.1f} -> {watched[0]:.1f} confirmed/s ({lost:+.1%} lost);"
            f" p99 {alone[2]:.3f} -> {watched[2]:.3f} s")  # fmt: skip
    return [
        Row(NAME, "throughput lost with 10 live viewers", watched[3], lost * 100, "%", higher_is_better=False,
            target=Target("value", maximum=10), note=note),
        Row(NAME, "p99 placed -> confirmed, 10 live viewers / none", watched[3], growth, "x",
            higher_is_better=False, target=Target("value", maximum=1.2)),
    ]  # fmt: skip

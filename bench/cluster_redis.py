"""The live-cluster latency benchmark (bench/cluster.py) on the Redis broker: REDIS_URL of the
bench's shell, or the local server's db 0."""

import os

from bench.cluster import BUDGET, SETTINGS, run_broker

NAME = "cluster_redis"
BUDGET = BUDGET
SETTINGS = {**SETTINGS, "REDIS_URL": os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"}


def run(*, url: str, quick: bool, **_):
    return run_broker(name=NAME, url=url, quick=quick, settings=SETTINGS)

"""Settings come from the environment; production settings pass `check --deploy`."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRODUCTION = {
    "SECRET_KEY": "x7#kq!2v9Lr$0pWz@M4t^bN8cYe&Fh3Ju6Dg1Sa5Qo+Ri-Tl=Vn*Xm%Zy~Kw_Ep",
    "ALLOWED_HOSTS": "shop.example.com",
    "DATABASE_URL": "sqlite:////tmp/never-opened-by-check.sqlite3",
}


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in ("SECRET_KEY", "DEBUG", "DATABASE_URL", "SECURE_SSL_REDIRECT")
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env={**clean, **env}, capture_output=True, text=True
    )


def test_production_settings_pass_check_deploy():
    result = manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_secret_key_is_required_when_debug_is_off():
    result = manage("check", DATABASE_URL=PRODUCTION["DATABASE_URL"])
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "ImproperlyConfigured: SECRET_KEY must be set when DEBUG is off (see README, Configuration)."
    )


def test_stripe_gateway_needs_a_key():
    result = manage("check", PAYMENT_GATEWAY="stripe", DEBUG="1")
    assert result.returncode == 2
    assert "PAYMENT_GATEWAY=stripe needs STRIPE_API_KEY" in result.stderr and "Traceback" not in result.stderr


def test_models_and_migrations_agree():
    result = manage(
        "makemigrations",
        "--check",
        "--dry-run",
        DEBUG="1",
        DATABASE_URL="sqlite:////tmp/never-opened.sqlite3",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No changes detected" in result.stdout


def test_the_owner_url_adds_an_owner_alias_for_migrate_only():
    result = manage(
        "shell",
        "--no-imports",
        "-c",
        "from django.conf import settings; d = settings.DATABASES;"
        " print(d['default']['USER'], d['owner']['USER'], d['owner']['ENGINE'], d['owner']['TEST']['MIRROR'])",
        DEBUG="1",
        DATABASE_URL="postgres://shop_app@db.example.com:5432/shop",
        DATABASE_OWNER_URL="postgres://shop_owner@db.example.com:5432/shop",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.split() == ["shop_app", "shop_owner", "django.db.backends.postgresql", "default"]


def test_the_owner_url_needs_postgresql():
    result = manage(
        "check", DEBUG="1", DATABASE_URL=PRODUCTION["DATABASE_URL"], DATABASE_OWNER_URL="postgres://o@db/shop"
    )
    assert result.returncode == 2
    assert "DATABASE_OWNER_URL needs a PostgreSQL DATABASE_URL" in result.stderr
    assert "Traceback" not in result.stderr


def test_settings_that_would_make_the_runner_spin_or_misreport_are_refused_at_start():
    """A lease of 0 makes the heartbeat spin, a negative backoff retries in the past, and a stuck
    threshold below the minute sweep reports every waiting list stuck: each is a system check error."""
    result = manage(
        "check",
        DEBUG="1",
        TODO_LEASE_SECONDS="0",
        TODO_BACKOFF_SECONDS="-1",
        TODO_STUCK_AFTER_SECONDS="59",
        INPROCESS_GATEWAY_FAILURE_RATE="1.5",
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    errors = sorted(line.split(")")[0].split("(")[-1] for line in result.stderr.splitlines() if ": (" in line)
    assert errors == ["payments.E104", "todolists.E101", "todolists.E102", "todolists.E105"]
    assert "TODO_LEASE_SECONDS is 0: a lease must last more than 0 s" in result.stderr
    assert "TODO_STUCK_AFTER_SECONDS is 59, below the sweep interval (60 s)" in result.stderr


def test_the_defaults_pass_the_checks():
    result = manage("check", DEBUG="1")
    assert result.returncode == 0 and "no issues" in result.stdout, result.stderr


def test_a_list_declaring_a_stuck_threshold_below_the_sweep_is_refused():
    import dataclasses
    import datetime

    from django.core import checks

    from todolists.lists import registry

    hasty = dataclasses.replace(
        registry.get("orders_to_confirm"), name="test_hasty", stuck_after=datetime.timedelta(seconds=30)
    )
    registry.register(hasty)
    try:
        messages = [m for m in checks.run_checks() if m.id == "todolists.E003"]
    finally:
        registry.unregister(hasty.name)
    assert [m.msg.split(":")[0] for m in messages] == ["TODO list 'test_hasty'"]

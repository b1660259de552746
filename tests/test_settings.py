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

"""Settings, read from the environment (and a `.env` file when present) with django-environ.

With no environment at all the system runs embedded: SQLite in the project folder and the
django-q2 ORM broker, so nothing but Python is needed. Every variable is listed in README.md.
"""

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from eventstore import conf as eventstore_conf
from payments import conf as payments_conf
from todolists import conf as todolists_conf

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env")

DEBUG = env.bool("DEBUG", default=False)

SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off (see README, Configuration).")
    SECRET_KEY = "insecure-development-key-only-used-with-DEBUG-on"

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "config.apps.DebugAdminConfig",  # the admin, with the TODO-list dashboard as its index
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_q",
    "eventstore",
    "todolists",
    "orders",
    "payments",
    # More steps of the process, without editing this file (see README, "Add a step").
    *env.list("EXTRA_APPS", default=[]),
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Serves the collected static files from the app server itself (see README, production).
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "eventstore.setup_hint.UnmigratedDatabaseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "config.wsgi.application"

# --- Database -------------------------------------------------------------------------------
POSTGRESQL = "django.db.backends.postgresql"
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
_db = DATABASES["default"]
if _db["ENGINE"] == "django.db.backends.sqlite3":
    # A web process and a worker cluster share one file: WAL lets readers run beside the writer,
    # IMMEDIATE takes the write lock at BEGIN (no lock upgrade deadlocks), and the timeout waits
    # for it instead of failing with "database is locked".
    _db.setdefault("OPTIONS", {}).update(
        {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
    # A file, not :memory:, so threads and subprocesses in the tests share one database.
    _db["TEST"] = {"NAME": env.str("TEST_DATABASE_NAME", default=str(BASE_DIR / "test-db.sqlite3"))}
elif _db["ENGINE"] in (POSTGRESQL, "django.db.backends.postgresql_psycopg2"):
    _db["ENGINE"] = POSTGRESQL
    _db["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    _db["CONN_HEALTH_CHECKS"] = True
    if "TEST_DATABASE_NAME" in env:
        _db["TEST"] = {"NAME": env.str("TEST_DATABASE_NAME")}
if "DATABASE_OWNER_URL" in env:
    # The role that owns the tables (README, "Database roles"): only `migrate --database owner` and
    # `eventstore_grant_app_role --database owner` use it; the application never does. The test
    # suite runs as DATABASE_URL, so there the alias mirrors the default one.
    if _db["ENGINE"] != POSTGRESQL:
        raise ImproperlyConfigured(
            "DATABASE_OWNER_URL needs a PostgreSQL DATABASE_URL (SQLite has no roles)."
        )
    DATABASES["owner"] = env.db("DATABASE_OWNER_URL") | {"ENGINE": POSTGRESQL, "TEST": {"MIRROR": "default"}}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Auth, i18n, static -----------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
FORMAT_MODULE_PATH = "config.formats"  # one time format across the admin, with its zone

STATIC_URL = "static/"
STATIC_ROOT = env.str("STATIC_ROOT", default=str(BASE_DIR / "staticfiles"))
# WhiteNoise serves what `collectstatic` put in STATIC_ROOT, with precompressed gzip
# copies. Not the manifest storage: a missing manifest would break every admin page
# (and the tests) before collectstatic runs, for a cache-busting gain the admin does not need.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# --- Security (production values unless DEBUG; `manage.py check --deploy` is clean) ------------
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
# Load balancers probe /health/ over plain HTTP on the internal network; a redirect would fail them.
SECURE_REDIRECT_EXEMPT = [r"^health/$", r"^health/process/$"]
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env.bool("BEHIND_PROXY", False) else None
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "filters": {"forbidden_in_one_line": {"()": "config.log_filters.ForbiddenInOneLine"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django-q": {"level": env.str("Q_LOG_LEVEL", default="WARNING")},
        "django.request": {"filters": ["forbidden_in_one_line"]},
    },
}

# --- django-q2 --------------------------------------------------------------------------------
# Read once at import by django-q2. `timeout` (how long one task may run) stays below `retry`
# (when the ORM broker redelivers an unacknowledged task), so a slow task is killed before a
# second worker could receive it. Nothing relies on exactly-once delivery: the TODO lists hold
# the obligations and the schedule sweeps them every minute.
Q_CLUSTER = {
    "name": "todolists",
    "workers": env.int("Q_WORKERS", default=2),
    "timeout": env.int("Q_TIMEOUT", default=60),
    "retry": env.int("Q_RETRY", default=90),
    "max_attempts": 1,
    "ack_failures": True,
    "catch_up": False,
    "save_limit": env.int("Q_SAVE_LIMIT", default=250),
    "poll": env.float("Q_POLL", default=0.2),
    "label": "Task queue",
}
if "REDIS_URL" in env:
    # Fail fast when Redis is unreachable; the nudge is best-effort and the schedule sweeps anyway.
    _redis = env.str("REDIS_URL")
    Q_CLUSTER["redis"] = (
        _redis
        if "socket_connect_timeout" in _redis
        else (_redis + ("&" if "?" in _redis else "?") + "socket_connect_timeout=2")
    )
else:
    Q_CLUSTER["orm"] = "default"

# --- The process --------------------------------------------------------------------------------
# Each app's settings, their defaults and their system checks live in <app>/conf.py; here they are
# read from the environment, typed like their defaults (README, Configuration).


def _from_env(defaults: dict) -> dict:
    return {name: env(name, cast=type(default), default=default) for name, default in defaults.items()}


_payments = _from_env(payments_conf.DEFAULTS)
globals().update(_payments | _from_env(todolists_conf.DEFAULTS) | _from_env(eventstore_conf.DEFAULTS))
# Fail fast, before anything starts (the range checks are system checks, in the apps' conf.py).
if _payments["PAYMENT_GATEWAY"] not in payments_conf.GATEWAYS:
    raise ImproperlyConfigured(
        f"PAYMENT_GATEWAY must be 'inprocess' or 'stripe', not {_payments['PAYMENT_GATEWAY']!r}."
    )
if _payments["PAYMENT_GATEWAY"] == "stripe" and not _payments["STRIPE_API_KEY"]:
    raise ImproperlyConfigured("PAYMENT_GATEWAY=stripe needs STRIPE_API_KEY.")
# The event store reports a transaction holding readers back once it is open this long (seconds):
# a few milliseconds is normal traffic (projection_status, the dashboard).
EVENTSTORE_HELD_BACK_AFTER_SECONDS = env.float("EVENTSTORE_HELD_BACK_AFTER_SECONDS", default=5.0)
# Past this many parked business cases a projection halts as a whole (eventstore/catchup.py), and
# a rebuild differing from the live rows by more rows is not swapped without --accept-differences.
EVENTSTORE_PARKED_CASES_LIMIT = env.int("EVENTSTORE_PARKED_CASES_LIMIT", default=100)
EVENTSTORE_REPLAY_MAX_DIFFERENCES = env.int("EVENTSTORE_REPLAY_MAX_DIFFERENCES", default=10)
# /metrics wants `Authorization: Bearer <METRICS_TOKEN>` when set (see README, Operating).
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")

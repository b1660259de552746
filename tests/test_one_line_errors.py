"""Expected refusals and outages are one clear line in the log, never a traceback: an admin 403, a
command placing an order while the broker is down, and `migrate` run by the application role."""

import logging
import os
import subprocess
import sys

import psycopg
import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from tests.conftest import database_url_for_subprocess
from tests.test_append_only_roles import ROOT, _manage, _url, owned_database, postgres_only  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_admin_403_is_logged_in_one_line_without_a_traceback(client, django_user_model, caplog):
    user = django_user_model.objects.create_user("viewer", password="pw-viewer-123", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename="view_order"))
    client.force_login(user)
    url = reverse("admin:orders_order_add")
    with caplog.at_level(logging.WARNING, logger="django.request"):
        assert client.get(url).status_code == 403
    [record] = [r for r in caplog.records if r.name == "django.request"]
    assert record.getMessage() == f"Forbidden (Permission denied): {url}"
    assert record.exc_info is None and "Traceback" not in caplog.text


def test_placing_an_order_while_the_broker_is_down_says_so_in_one_line_and_places_it():
    from eventstore.models import Event
    from orders.models import Order  # noqa: F401 (the read model is caught up by the sweep)

    env = {
        **os.environ,
        "DATABASE_URL": database_url_for_subprocess(),
        "REDIS_URL": "redis://127.0.0.1:1/0",  # nothing listens there
        "TODO_NUDGE": "true",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "place_order", "--amount", "12.50", "--currency", "EUR"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    order_id = result.stdout.strip()
    assert Event.objects.filter(type="OrderPlaced", correlation_id=order_id).exists()
    assert "Traceback" not in result.stderr
    [line] = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert "could not enqueue a nudge for payments_to_issue (ConnectionError:" in line
    assert line.endswith("the schedule will sweep")


@postgres_only
def test_migrate_as_the_application_role_is_refused_in_one_line(owned_database):  # noqa: F811
    owner, app = owned_database
    roles = {"DATABASE_URL": _url(app), "DATABASE_OWNER_URL": _url(owner)}
    _manage("migrate", "--database", "owner", "--verbosity", "0", **roles)
    _manage("eventstore_grant_app_role", "--role", app["user"], "--database", "owner", **roles)
    # A release with a migration to apply (here: the last one, unapplied by the owner).
    _manage("migrate", "todolists", "0005", "--database", "owner", "--verbosity", "0", **roles)

    result = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--verbosity", "0"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": _url(app)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    [line] = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert line.startswith("CommandError: ") and "must be owner of" in line
    assert "manage.py migrate --database owner" in line
    with psycopg.connect(**owner) as conn:  # nothing half-applied
        applied = conn.execute(
            "SELECT count(*) FROM django_migrations WHERE app = 'todolists' AND name >= '0006'"
        ).fetchone()[0]
    assert applied == 0

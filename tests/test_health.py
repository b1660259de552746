"""For machines and for the first five minutes: /health/, /metrics, exit codes, hints."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from eventstore.projections import projection_catch_up
from tests.factories import PlacedOrderFactory
from todolists.ui import verdict

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def healthy(no_nudge):
    PlacedOrderFactory()
    PlacedOrderFactory(declined=True)
    call_command("process_todos")


@pytest.fixture
def halted(seeded_process, payments_list_breaks_on_cancel):
    """payments_to_issue's projection stops on an OrderCancelled it cannot handle."""
    from orders.commands import order_cancel

    order_cancel(order_id=seeded_process["stuck"], reason="changed mind")
    assert projection_catch_up(name="todo:payments_to_issue").error


@pytest.fixture
def stuck(seeded_process, wait_until):
    from todolists.ui.status import todo_lists_status

    wait_until(lambda: any(s.stuck for s in todo_lists_status()), timeout=10, message="a stuck list")


def test_health_is_readiness_200_when_everything_runs(client, healthy):
    response = client.get(reverse("health"))
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    process = client.get(reverse("health_process"))
    assert process.status_code == 200
    body = process.json()
    assert body["status"] == "ok" and body["reasons"] == [] and body["findings"] == []
    assert {s["level"] for s in body["lists"].values()} == {"ok"}
    assert not any(p["halted"] for p in body["projections"].values())


def test_a_stuck_list_fails_the_process_verdict_never_readiness(client, stuck):
    assert client.get(reverse("health")).status_code == 200  # the admin stays in rotation
    response = client.get(reverse("health_process"))
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "failing" and body["lists"]["payments_to_issue"]["level"] == "failing"
    [stuck_reason] = [r for r in body["reasons"] if "an item has been due for" in r]
    assert stuck_reason.startswith("Payments to issue: an item has been due for ")
    assert "start `manage.py qcluster`" in stuck_reason  # no worker runs in this test


def test_a_halted_projection_fails_the_process_verdict_naming_the_event(client, halted):
    assert client.get(reverse("health")).status_code == 200
    body = client.get(reverse("health_process")).json()
    assert body["status"] == "failing"
    [reason] = [
        r for r in body["reasons"] if r.startswith("projection todo:payments_to_issue is halted at event #")
    ]
    assert "(OrderCancelled" in reason and "projection_skip --position" in reason
    assert body["projections"]["todo:payments_to_issue"]["halted"] is True
    assert body["projections"]["todo:payments_to_issue"]["level"] == "failing"


def test_parked_items_are_attention_never_healthy_and_503_when_asked(client, no_nudge, settings):
    settings.TODO_MAX_ATTEMPTS, settings.TODO_BACKOFF_SECONDS = 1, 0
    settings.INPROCESS_GATEWAY_FAILURE_RATE = 1.0
    PlacedOrderFactory()
    call_command("process_todos")
    response = client.get(reverse("health_process"))
    assert response.status_code == 200  # attention: a monitor reads "status", or asks fail_on
    body = response.json()
    assert body["status"] == "attention"
    assert body["error_groups"] == [
        {"list_name": "payments_to_issue", "kind": "GatewayUnavailable (503)", "parked": 1, "retrying": 0}
    ]
    [reason] = body["reasons"]
    assert reason.startswith("Payments to issue: 1 item(s) parked (1 GatewayUnavailable (503)) since ")
    assert reason.endswith(": retry, park or give up on them from the error groups on the dashboard")
    assert client.get(reverse("health_process"), {"fail_on": "attention"}).status_code == 503


def test_readiness_is_503_only_when_the_database_does_not_answer(client, monkeypatch):
    from django.db import OperationalError
    from django.db.backends.utils import CursorWrapper

    def down(self, sql, params=None):
        raise OperationalError("connection refused")

    monkeypatch.setattr(CursorWrapper, "execute", down)
    response = client.get(reverse("health"))
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "reason": "the database does not answer"}


def scrape(client, settings, token="s3cret-token"):
    settings.METRICS_TOKEN = token
    response = client.get(reverse("metrics"), headers={"authorization": f"Bearer {token}"})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain; version=0.0.4")
    return response.content.decode()


def test_metrics_need_the_token_and_are_off_without_one_in_production(client, settings, healthy):
    settings.DEBUG, settings.METRICS_TOKEN = False, ""
    off = client.get(reverse("metrics"))
    assert off.status_code == 403 and "METRICS_TOKEN" in off.json()["error"]
    settings.METRICS_TOKEN = "s3cret-token"
    assert client.get(reverse("metrics")).status_code == 401
    assert client.get(reverse("metrics"), headers={"authorization": "Bearer wrong"}).status_code == 401


def test_metrics_when_healthy(client, settings, healthy):
    text = scrape(client, settings)
    assert 'todo_list_open{list="payments_to_issue"} 0.0' in text
    assert 'todo_list_stuck{list="payments_to_issue"} 0.0' in text
    assert 'projection_halted{projection="orders"} 0.0' in text
    assert 'projection_lag_events{projection="todo:payments_to_issue"} 0.0' in text
    assert 'todo_items_closed_total{event="PaymentIssued",list="payments_to_issue"} 1.0' in text
    assert 'todo_items_closed_total{event="PaymentFailed",list="payments_to_issue"} 1.0' in text
    assert 'todo_items_opened_total{list="orders_to_confirm"} 1.0' in text
    assert "todo_process_level 0.0" in text and 'todo_list_level{list="payments_to_issue"} 0.0' in text


def test_metrics_when_stuck_and_halted(client, settings, stuck, halted):
    text = scrape(client, settings)
    assert 'todo_list_parked{list="payments_to_issue"} 1.0' in text
    assert 'todo_list_due{list="payments_to_issue"} 1.0' in text
    assert 'todo_list_stuck{list="payments_to_issue"} 1.0' in text
    assert 'projection_halted{projection="todo:payments_to_issue"} 1.0' in text
    assert 'todo_events_recorded_total{type="TodoAttemptFailed"} 3.0' in text  # two, then one
    assert 'todo_events_recorded_total{type="TodoItemParked"} 1.0' in text
    assert "todo_process_level 2.0" in text and 'todo_list_level{list="payments_to_issue"} 2.0' in text
    assert 'projection_level{projection="todo:payments_to_issue"} 2.0' in text


def test_todo_status_check_exits_2_naming_the_stuck_list(stuck, capsys):
    with pytest.raises(
        CommandError, match=r"failing: .*Payments to issue: an item has been due for"
    ) as failed:
        call_command("todo_status", "--check")
    assert failed.value.returncode == 2
    assert "failing" in capsys.readouterr().out  # the table is printed first


def test_todo_status_check_and_projection_status_pass_when_healthy(healthy, capsys):
    call_command("todo_status", "--check")
    call_command("projection_status")
    assert "HALTED" not in capsys.readouterr().out


def test_projection_status_exits_non_zero_naming_the_halted_projection(halted, capsys):
    with pytest.raises(
        CommandError, match=r"projection todo:payments_to_issue is halted at event #\d+ \(OrderCancelled"
    ):
        call_command("projection_status")
    assert "HALTED at" in capsys.readouterr().out


def run_manage(*args: str, database_url: str, code: str | None = None) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-c", code] if code else [sys.executable, "manage.py", *args]
    return subprocess.run(
        argv,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={
            **os.environ,
            "DATABASE_URL": database_url,
            "DEBUG": "1",
            "DJANGO_SETTINGS_MODULE": "config.settings",
        },
    )


@pytest.mark.parametrize("command", [["todo_status"], ["projection_status"], ["process_todos"]])
def test_an_unmigrated_database_gets_a_one_line_hint_from_commands(tmp_path, command):
    result = run_manage(*command, database_url=f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "CommandError: The database is not migrated: run `python manage.py migrate` first."
    )


def test_an_unmigrated_database_gets_a_one_line_hint_in_the_admin(tmp_path):
    code = (
        "import django; django.setup()\n"
        "from django.test import Client\n"
        "r = Client(HTTP_HOST='127.0.0.1').post('/admin/login/', {'username': 'demo', 'password': 'pw'})\n"
        "print(r.status_code, r.content.decode())\n"
    )
    result = run_manage(database_url=f"sqlite:///{tmp_path / 'empty.sqlite3'}", code=code)
    assert result.stdout.strip() == (
        "503 The database is not migrated: run `python manage.py migrate` first."
    ), result.stderr[-2000:]


def test_demo_checks_its_port_before_starting_anything(settings, monkeypatch):
    settings.DEBUG = True
    started = []
    monkeypatch.setattr(subprocess, "Popen", lambda *a, **k: started.append(a))  # a cluster
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(CommandError, match=f"Cannot listen on 127.0.0.1:{port}"):
            call_command("demo", "--addrport", f"127.0.0.1:{port}")
    from django.contrib.auth import get_user_model

    from eventstore.models import Event

    # No cluster, no login, no orders: a busy port stops it before anything with an effect.
    assert started == [] and not get_user_model().objects.exists() and not Event.objects.exists()


def test_process_todos_says_worked_succeeded_failed_parked(no_nudge, settings, capsys):
    settings.TODO_MAX_ATTEMPTS, settings.TODO_BACKOFF_SECONDS = 2, 0
    settings.INPROCESS_GATEWAY_FAILURE_RATE = 1.0
    PlacedOrderFactory()
    call_command("process_todos", "--list", "payments_to_issue")
    assert capsys.readouterr().out.strip() == "payments_to_issue: 2 worked, 0 succeeded, 2 failed, 1 parked"
    settings.INPROCESS_GATEWAY_FAILURE_RATE = 0.0
    PlacedOrderFactory()
    call_command("process_todos", "--list", "payments_to_issue")
    assert capsys.readouterr().out.strip() == "payments_to_issue: 1 worked, 1 succeeded, 0 failed, 0 parked"


def test_every_reason_has_one_line_and_reaches_the_process_verdict(client, healthy, monkeypatch):
    """Readers held back, events of unregistered types: attention, each one sentence."""
    import dataclasses

    from eventstore import projections as engine

    real = engine.projection_status

    def held_back(**kwargs):
        return [dataclasses.replace(p, held_back_seconds=42.0, held_back_pid=777) for p in real(**kwargs)]

    monkeypatch.setattr(verdict, "projection_status", held_back)
    monkeypatch.setattr(verdict, "unregistered_events", lambda: {"LegacyThing": 3})
    body = client.get(reverse("health_process")).json()
    assert body["status"] == "attention"
    assert body["reasons"] == [
        "readers are held back by a write transaction open for 42 s (pid 777); events appended since are "
        "not visible yet: commit or end that transaction (SELECT pg_terminate_backend(777))",
        "3 event(s) of unregistered type LegacyThing, read by no projection: install the app that declares "
        "the type, or register it",
    ]

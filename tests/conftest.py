import contextlib
import dataclasses
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import ClassVar, cast

import pytest
from django.apps import apps
from django.core.management import call_command
from django.db import connection, connections, models, transaction
from hypothesis import settings as hypothesis_settings

from eventstore.events import DomainEvent, event_type
from eventstore.models import Event
from eventstore.projections import Batch, Projection, Table, registry
from eventstore.store import event_append
from payments.gateway import InProcessGateway, PaymentGateway

ON_POSTGRES = connection.vendor == "postgresql"

# Examples touch the database and the machine is shared: no per-example deadline; the counts
# stay modest (tests raise them where a property earns it). HYPOTHESIS_PROFILE picks another.
hypothesis_settings.register_profile("suite", deadline=None, max_examples=100)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "suite"))


def requires_postgres(why: str) -> pytest.MarkDecorator:
    """Skip on SQLite, printing why the test is PostgreSQL-only."""
    return pytest.mark.skipif(
        not ON_POSTGRES, reason=f"PostgreSQL only ({why}); set DATABASE_URL=postgres://..."
    )


# --- database setup ----------------------------------------------------------------------------


class Applied(models.Model):
    """Read model of the test projection: one row per applied event (duplicates stay visible)."""

    position = models.BigIntegerField()
    stream_id = models.CharField(max_length=200)
    objects: ClassVar[models.Manager["Applied"]] = models.Manager()  # declared: not in an app's models module

    class Meta:
        app_label = "eventstore"
        db_table = "test_applied"

    def __str__(self) -> str:
        return f"applied #{self.position}"


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        with connection.schema_editor() as editor:
            editor.create_model(Applied)
        # Django's system checks, as `manage.py test` would run them: a misdeclared list fails the run.
        call_command("check", fail_level="ERROR")
    if not ON_POSTGRES:
        yield
        return
    # The log's trigger refuses TRUNCATE. Django's flush between transactional tests runs as the
    # test database's owner (DATABASE_URL here), so it switches the trigger off around its
    # TRUNCATE, inside the flush's own transaction: no other session ever sees it off.
    with pytest.MonkeyPatch.context() as patch:
        operations = type(connection.ops)
        patch.setattr(operations, "sql_flush", _sql_flush_as_owner(operations.sql_flush))
        yield


def _sql_flush_as_owner(sql_flush):
    def flush(self, style, tables, **kwargs):
        statements = sql_flush(self, style, tables, **kwargs)
        if Event._meta.db_table not in tables:
            return statements
        trigger = f"{Event._meta.db_table} %s TRIGGER eventstore_event_no_truncate"
        return [f"ALTER TABLE {trigger % 'DISABLE'}", *statements, f"ALTER TABLE {trigger % 'ENABLE'}"]

    return flush


# --- test events and projection --------------------------------------------------------------


@event_type("TestThingHappened")
class ThingHappened(DomainEvent):
    n: int = 0
    poison: bool = False


class Switch:
    """Makes the test projection fail on events marked `poison` while `poisoned` is true; `hold`
    (a pair of threading.Events) makes the next apply signal the first and wait for the second."""

    poisoned = True
    hold: tuple | None = None


SWITCH = Switch()


def _apply_things(batch: Batch) -> None:
    if SWITCH.hold:
        (entered, release), SWITCH.hold = SWITCH.hold, None
        entered.set()
        assert release.wait(30), "the test never released the held apply"
    rows = []
    for e in batch.events:
        thing = cast(ThingHappened, e.event)
        if thing.poison and SWITCH.poisoned:
            raise ValueError(f"cannot handle thing {thing.n}")
        rows.append(batch.model(Applied)(position=e.position, stream_id=e.stream_id))
    batch.model(Applied)._default_manager.bulk_create(rows)


# Registered for the whole session, so the system checks see every test event type handled.
registry.register(
    Projection(
        name="test_applied",
        handles=(ThingHappened,),
        apply=_apply_things,
        tables=(Table(model=Applied),),
    )
)


@pytest.fixture
def scoped_event_types(monkeypatch):
    """Event types a test registers are unregistered after it (the registry is process-wide)."""
    from eventstore import events

    monkeypatch.setattr(events, "_REGISTRY", dict(events._REGISTRY))
    monkeypatch.setattr(events, "_UPCASTERS", dict(events._UPCASTERS))


@pytest.fixture
def applied_projection():
    """The projection writing one Applied row per TestThingHappened; `.poisoned` makes it fail."""
    SWITCH.poisoned, SWITCH.hold = True, None
    yield SWITCH
    SWITCH.poisoned, SWITCH.hold = True, None


# --- the process -------------------------------------------------------------------------------


@pytest.fixture
def no_nudge(settings):
    """Tests that drive the lists inline do not enqueue django-q2 tasks."""
    settings.TODO_NUDGE = False


class ScriptedGateway(InProcessGateway):
    """The in-process gateway with a test's script around each charge: `around(charge, **request)`,
    where `charge()` makes the real one (or never, when the script raises or returns instead)."""

    def __init__(self, around: Callable[..., object] | None = None, *, max_concurrency: int = 4) -> None:
        super().__init__()
        self.around = around
        self.max_concurrency = max_concurrency

    def charge(self, **request):
        real = super().charge
        return self.around(lambda: real(**request), **request) if self.around else real(**request)


class NoGateway(InProcessGateway):
    """Fails the test on any request: for code that must never reach the gateway."""

    def charge(self, **request):
        pytest.fail(f"the gateway was asked to charge {request['idempotency_key']}")

    def find_charge(self, **request):
        pytest.fail(f"the gateway was asked to find {request['idempotency_key']}")


@pytest.fixture
def use_gateway():
    """Install a payment gateway for the test, through the seam production uses (the payments app
    config's `gateway`): `use_gateway(ScriptedGateway(...))` returns it."""
    config = apps.get_app_config("payments")

    def install(gateway: PaymentGateway) -> PaymentGateway:
        config.gateway = gateway
        return gateway

    yield install
    config.gateway = None


@pytest.fixture
def use_broker():
    """Install the function the nudge enqueues its tasks with, through the seam production uses
    (the todolists app config's `enqueue`, async_task's signature): `use_broker(fn)`."""
    config = apps.get_app_config("todolists")

    def install(enqueue: Callable[..., object]) -> None:
        config.enqueue = enqueue

    yield install
    config.enqueue = None


@pytest.fixture
def work_list_with():
    """Work a registered list with another function for the test, its declaration otherwise the
    same: `work_list_with(list_name, work)`, through the list registry's own API."""
    from todolists.lists import registry as todo_lists

    originals = []

    def replace(list_name: str, work: Callable[..., Mapping[str, Exception | None]]) -> None:
        original = todo_lists.unregister(list_name)
        assert original is not None, f"no list {list_name} to replace"
        originals.append(original)
        todo_lists.register(dataclasses.replace(original, work=work))

    yield replace
    for original in reversed(originals):
        todo_lists.unregister(original.name)
        todo_lists.register(original)


@pytest.fixture
def place_orders(no_nudge):
    from tests.factories import order_placed

    def place(visa: int, declined: int) -> tuple[list[str], list[str]]:
        paid = [order_placed() for _ in range(visa)]
        failed = [order_placed(declined=True) for _ in range(declined)]
        return paid, failed

    return place


def process_snapshot() -> dict:
    """Every row of every read model and list (without operational claim columns), for comparisons."""
    from orders.models import Order
    from payments.models import Payment
    from todolists.models import TodoItem

    return {
        "orders": sorted(Order.objects.values_list()),
        "payments": sorted(Payment.objects.values_list()),
        "todo": sorted(TodoItem.objects.order_by().values_list(*_todo_fields())),
    }


# The claim's bookkeeping: operational state, not rebuilt by a replay.
OPERATIONAL = ("id", "claimed_by", "claimed_until", "claimed_at", "task_started_at")


def _todo_fields() -> list[str]:
    from todolists.models import TodoItem

    return [f.attname for f in TodoItem._meta.fields if f.name not in OPERATIONAL]


# --- helpers -------------------------------------------------------------------------------------


@pytest.fixture
def wait_until() -> Callable[..., None]:
    """Poll `predicate` until it is true; fail with `message` at the deadline. Never a blind sleep."""

    def wait(predicate: Callable[[], bool], *, timeout: float = 30.0, message: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {timeout}s waiting for {message}")
            time.sleep(0.05)

    return wait


@pytest.fixture
def run_in_thread():
    """Start a function in a thread with its own DB connection; join all threads at teardown."""
    threads: list[threading.Thread] = []
    errors: list[BaseException] = []

    def start(fn: Callable[[], None]) -> threading.Thread:
        def target():
            try:
                fn()
            except BaseException as exc:
                errors.append(exc)
            finally:
                connections.close_all()

        t = threading.Thread(target=target, daemon=True)
        t.start()
        threads.append(t)
        return t

    start.errors = errors
    yield start
    for t in threads:
        t.join(timeout=60)
    if errors:
        raise errors[0]


@pytest.fixture
def append_held_open(run_in_thread, wait_until):
    """`with append_held_open("s-1"):` another connection appends one event to stream "s-1" and
    keeps its transaction open until the block ends: a write transaction in flight."""

    @contextlib.contextmanager
    def hold(stream_id: str, n: int = 0) -> Iterator[None]:
        appended, release = threading.Event(), threading.Event()

        def write() -> None:
            with transaction.atomic():
                event_append(stream_id=stream_id, events=[ThingHappened(n=n)], expected_version=0)
                appended.set()
                assert release.wait(30), "the test never ended the open transaction"

        run_in_thread(write)
        wait_until(appended.is_set, message=f"an open transaction's append to {stream_id}")
        try:
            yield
        finally:
            release.set()

    return hold


@pytest.fixture
def projection_broken_for(monkeypatch):
    """`projection_broken_for("payments", case, event_type=None)`: that projection's handler fails on
    the events of one business case (of one type, if given), as a bug would; the rest apply."""

    def install(name: str, case: str, *, event_type: str | None = None) -> None:
        projection = registry.get(name)
        assert projection is not None, f"no projection {name}"

        def broken(batch: Batch) -> None:
            if any(e.correlation_id == case and event_type in (None, e.type) for e in batch.events):
                raise RuntimeError(f"bug in the {name} read model")
            projection.apply(batch)

        monkeypatch.setitem(registry._items, name, dataclasses.replace(projection, apply=broken))

    return install


def pytest_report_header(config):
    return f"database: {connection.vendor} {connection.settings_dict['NAME']}"


# --- real subprocesses: a qcluster, localstripe ----------------------------------------------------


def database_url_for_subprocess() -> str:
    """The URL of the database this test is using (the test database), for a child process."""
    from urllib.parse import quote

    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    auth = quote(s["USER"] or "") + (f":{quote(s['PASSWORD'])}" if s.get("PASSWORD") else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


class QCluster(subprocess.Popen[bytes]):
    """A `manage.py qcluster` process with its log file, and whether a test killed it."""

    log_path: Path
    crashed: bool = False


@pytest.fixture
def start_qcluster(tmp_path, wait_until):
    """Start real `manage.py qcluster` processes on the test database (one per "machine").

    Each is stopped with SIGTERM to its main pid at teardown and must exit 0.
    """
    import signal
    import sys

    root = Path(__file__).resolve().parent.parent
    started: list[QCluster] = []

    def start(**extra_env: str) -> QCluster:
        log_path = tmp_path / f"qcluster-{len(started)}.log"
        env = {
            **os.environ,
            "DATABASE_URL": database_url_for_subprocess(),
            "Q_WORKERS": "2",
            "Q_LOG_LEVEL": "INFO",
        }
        env.pop("REDIS_URL", None)
        env.update(extra_env)
        with open(log_path, "w") as log:
            proc = QCluster(
                [sys.executable, "manage.py", "qcluster"],
                cwd=root,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, so `crash` can kill all of it
            )
        proc.log_path = log_path
        started.append(proc)
        wait_until(
            lambda: "running" in log_path.read_text() or proc.poll() is not None,
            timeout=60,
            message="qcluster start",
        )
        assert proc.poll() is None, f"qcluster died:\n{log_path.read_text()}"
        return proc

    def crash(proc: QCluster) -> None:
        """kill -9 the whole cluster (main process, sentinel, workers), as when its machine dies."""
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        proc.crashed = True

    start.crash = crash
    yield start
    failures = []
    alive = [proc for proc in started if not proc.crashed]
    for proc in alive:
        proc.send_signal(signal.SIGTERM)  # the main pid only: django-q2 stops its own children
    for proc in alive:
        try:
            code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = "timeout"
        if code != 0:
            failures.append(f"qcluster exited {code}:\n{proc.log_path.read_text()[-3000:]}")
    assert not failures, "\n".join(failures)


@pytest.fixture
def qcluster(start_qcluster):
    return start_qcluster()


# Another checkout on the same server picks its own with TEST_REDIS_URL (see README).
REDIS_TEST_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture
def redis_broker():
    """The Redis test database (db 15), emptied; skipped with a reason if Redis is not running."""
    import redis

    client = redis.Redis.from_url(REDIS_TEST_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.exceptions.ConnectionError:
        pytest.skip(f"Redis is not running at {REDIS_TEST_URL} (.ci/run starts it)")
    client.flushdb()
    yield REDIS_TEST_URL
    client.flushdb()


@pytest.fixture
def localstripe(wait_until):
    """localstripe (a Stripe emulator from PyPI) as a real HTTP server on a free port."""
    import shutil
    import socket
    import subprocess
    import sys
    import urllib.error
    import urllib.request
    from pathlib import Path

    exe = shutil.which("localstripe") or str(Path(sys.executable).parent / "localstripe")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--from-scratch"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        assert proc.poll() is None, "localstripe exited"
        try:
            urllib.request.urlopen(f"{base}/v1/payment_intents", timeout=1)
        except urllib.error.HTTPError:
            return True  # 401 without a key: it is up
        except OSError:
            return False
        return True

    wait_until(ready, timeout=30, message="localstripe to listen")
    yield base
    proc.terminate()
    proc.wait(timeout=30)


CHROMIUM = "/usr/bin/chromium"


@pytest.fixture
def chromium(monkeypatch):
    """Debian's headless Chromium, driven by Playwright."""
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium); .ci/run installs it")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in this thread; the ORM calls here are synchronous.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield browser
        browser.close()
        # Inside Playwright's loop the ORM got its own connection (asgiref context); close it.
        connections.close_all()


@pytest.fixture
def browser_page(live_server, chromium):
    """A page pointed at the live test server."""
    page = chromium.new_page()
    page.set_default_timeout(15000)
    page.base_url = live_server.url
    return page


# --- the admin under production settings, behind a TLS-terminating proxy ---------------------------


class _TLSProxy:
    """A tiny TLS-terminating reverse proxy (what nginx or a load balancer does in production): the
    browser speaks HTTPS to it; it forwards plain HTTP to the app server with X-Forwarded-Proto."""

    HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "upgrade", "proxy-connection"}

    def __init__(self, *, upstream_port: int, certfile: str, keyfile: str) -> None:
        import http.client
        import http.server
        import ssl

        hop_by_hop = self.HOP_BY_HOP

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # one request per connection: simple and enough here

            def forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k: v for k, v in self.headers.items() if k.lower() not in hop_by_hop}
                headers["X-Forwarded-Proto"] = "https"
                upstream = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=30)
                upstream.request(self.command, self.path, body=body or None, headers=headers)
                response = upstream.getresponse()
                payload = response.read()
                self.send_response(response.status, response.reason)
                for name, value in response.getheaders():
                    if name.lower() not in hop_by_hop | {"content-length"}:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                upstream.close()

            do_GET = do_POST = do_HEAD = forward

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certfile, keyfile)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


PRODUCTION_SECRET_KEY = "prod-like-test-key-7f3c9a1e5b8d2f4a6c0e9b7d5f3a1c8e6b4d2f0a9c7e5b3d1"


@pytest.fixture
def production_admin(tmp_path, wait_until):
    """The site as the README says to run it in production: `collectstatic`, then gunicorn with
    DEBUG off and BEHIND_PROXY on, behind a TLS-terminating proxy. Yields the proxy's https URL
    and the app server's plain http URL (to show what happens without the proxy)."""
    import http.client
    import shutil
    import socket
    import subprocess
    import sys
    from pathlib import Path

    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed; it makes the proxy's self-signed certificate")
    root = Path(__file__).resolve().parent.parent
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        app_port = s.getsockname()[1]
    proxy = _TLSProxy(upstream_port=app_port, certfile=str(cert), keyfile=str(key))
    env = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "SECURE_SSL_REDIRECT", "CONN_MAX_AGE")}
    env.update(
        SECRET_KEY=PRODUCTION_SECRET_KEY,
        DATABASE_URL=database_url_for_subprocess(),
        ALLOWED_HOSTS="127.0.0.1",
        BEHIND_PROXY="on",
        STATIC_ROOT=str(tmp_path / "static"),
    )
    env.pop("REDIS_URL", None)
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput"],
        cwd=root,
        env=env,
        check=True,
        capture_output=True,
    )
    log_path = tmp_path / "gunicorn.log"
    with open(log_path, "w") as log:
        server = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "gunicorn"),
                "config.wsgi",
                "-b",
                f"127.0.0.1:{app_port}",
                "-w",
                "2",
            ],
            cwd=root,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def up() -> bool:
        assert server.poll() is None, f"gunicorn exited:\n{log_path.read_text()}"
        upstream = http.client.HTTPConnection("127.0.0.1", app_port, timeout=2)
        try:
            upstream.request("HEAD", "/admin/login/")
            upstream.getresponse()  # any answer (a redirect to https, as it happens) means it is up
        except OSError:
            return False
        finally:
            upstream.close()
        return True

    try:
        wait_until(up, timeout=30, message="gunicorn to listen")
        yield {"https": f"https://127.0.0.1:{proxy.port}", "http": f"http://127.0.0.1:{app_port}"}
    finally:
        server.terminate()
        server.wait(timeout=30)
        proxy.close()


# --- a seeded process for the debug pages ----------------------------------------------------------


@pytest.fixture
def seeded_process(no_nudge, settings):
    """Orders in every state the debug pages must show, made through the real commands:
    confirmed, cancelled (declined), parked after two failed attempts, retrying (one failed
    attempt, next try in an hour), and one placed but never worked, which is due at once and
    makes `payments_to_issue` stuck after TODO_STUCK_AFTER_SECONDS (1 s here). The other two
    lists have nothing due, so only that list can be stuck."""
    from django.core.management import call_command

    from eventstore.projections import projections_catch_up
    from tests.factories import PlacedOrderFactory

    settings.TODO_STUCK_AFTER_SECONDS = 1
    settings.TODO_MAX_ATTEMPTS = 2
    ids = {"confirmed": PlacedOrderFactory(), "cancelled": PlacedOrderFactory(declined=True)}
    call_command("process_todos")
    settings.INPROCESS_GATEWAY_FAILURE_RATE = 1.0
    settings.TODO_BACKOFF_SECONDS = 0  # the second attempt is due at once, and parks the item
    ids["parked"] = PlacedOrderFactory()
    call_command("process_todos")
    settings.TODO_BACKOFF_SECONDS = 3600
    ids["retrying"] = PlacedOrderFactory()
    call_command("process_todos", "--list", "payments_to_issue")
    settings.INPROCESS_GATEWAY_FAILURE_RATE = 0.0
    ids["stuck"] = PlacedOrderFactory()
    projections_catch_up()
    return ids


@pytest.fixture
def payments_list_breaks_on_cancel(monkeypatch):
    """A bug in the payments_to_issue projection: it fails on any batch with an OrderCancelled. One
    failing business case is enough to call it a bug here (the suite's batches are small), so the
    projection halts as a whole instead of parking the case."""
    import dataclasses

    from eventstore import catchup
    from eventstore.projections import registry as projections

    monkeypatch.setattr(catchup, "CODE_LIKE_CASES", 1)

    projection = projections.get("todo:payments_to_issue")

    def broken(batch):
        if any(e.type == "OrderCancelled" for e in batch.events):
            raise RuntimeError("bug in the list projection")
        projection.apply(batch)

    monkeypatch.setitem(projections._items, projection.name, dataclasses.replace(projection, apply=broken))


@pytest.fixture
def poison_event(seeded_process):
    """The seeded process, then an OrderPlaced with no amount and no business case (correlation id)
    that bypassed the append checks (written by SQL, or by an older release), and one good order
    after it: with no case to park, the orders, payments and payments_to_issue projections halt on
    it, and the good order is hidden behind them."""
    from eventstore.projections import projections_catch_up
    from tests.factories import PlacedOrderFactory, poison_order_placed

    poison = poison_order_placed(with_case=False)
    seeded_process["hidden"] = PlacedOrderFactory()
    projections_catch_up()
    seeded_process["poison"] = poison.position
    return seeded_process


@pytest.fixture
def other_database():
    """A second database on the same PostgreSQL server (another application's), as a psycopg conninfo.
    Its transactions must never hold our log's readers back."""
    import psycopg

    s = connection.settings_dict
    name = f"{s['NAME']}_other"
    server = psycopg.conninfo.make_conninfo(
        host=s["HOST"] or "127.0.0.1", port=s["PORT"] or 5432, user=s["USER"], dbname="postgres"
    )
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    yield psycopg.conninfo.make_conninfo(server, dbname=name)
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

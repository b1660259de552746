import dataclasses
import threading
import time
from collections.abc import Callable

import pytest
from django.db import connection, connections, models

from eventstore.events import event_type
from eventstore.projections import Projection, projection_catch_up, registry

ON_POSTGRES = connection.vendor == "postgresql"

requires_postgres = pytest.mark.skipif(
    not ON_POSTGRES, reason="needs PostgreSQL (set DATABASE_URL=postgres://...); SQLite has no such behaviour"
)


# --- database setup ----------------------------------------------------------------------------


class Applied(models.Model):
    """Read model of the test projection: one row per applied event (duplicates stay visible)."""

    position = models.BigIntegerField()
    stream_id = models.CharField(max_length=200)

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
        if ON_POSTGRES:
            # The log refuses TRUNCATE; let Django flush this throwaway test database between tests.
            with connection.cursor() as cursor:
                name = connection.settings_dict["NAME"]
                cursor.execute(f'ALTER DATABASE "{name}" SET eventstore.allow_truncate = on')
                cursor.execute("SET eventstore.allow_truncate = on")


# --- test events and projection --------------------------------------------------------------


@event_type("TestThingHappened")
@dataclasses.dataclass(frozen=True, kw_only=True)
class ThingHappened:
    n: int = 0
    poison: bool = False


@pytest.fixture
def applied_projection():
    """A projection that writes one Applied row per TestThingHappened; `.poisoned` makes it fail."""

    class Switch:
        poisoned = True

    switch = Switch()

    def on_thing(event):
        if event.data.get("poison") and switch.poisoned:
            raise ValueError(f"cannot handle thing {event.data['n']}")
        Applied.objects.create(position=event.position, stream_id=event.stream_id)

    projection = Projection(
        name="test_applied",
        handlers={"TestThingHappened": on_thing},
        reset=lambda: Applied.objects.all().delete(),
    )
    registry.register(projection)
    yield switch
    registry.unregister(projection.name)


# --- the process -------------------------------------------------------------------------------


@pytest.fixture
def no_nudge(settings):
    """Tests that drive the lists inline do not enqueue django-q2 tasks."""
    settings.TODO_NUDGE = False


@pytest.fixture
def place_orders(no_nudge):
    from tests.factories import PlacedOrderFactory

    def place(visa: int, declined: int) -> tuple[list[str], list[str]]:
        paid = [PlacedOrderFactory() for _ in range(visa)]
        failed = [PlacedOrderFactory(declined=True) for _ in range(declined)]
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


def _todo_fields() -> list[str]:
    from todolists.models import TodoItem

    return [f.attname for f in TodoItem._meta.fields if f.name not in ("id", "claimed_by", "claimed_until")]


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
def catch_up_all():
    def run():
        return [projection_catch_up(name=n) for n in registry.names()]

    return run


def pytest_report_header(config):
    return f"database: {connection.vendor} {connection.settings_dict['NAME']}"

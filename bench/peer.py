"""The peer: the `eventsourcing` library (bench extra) on the same PostgreSQL server.

An order aggregate with the same four facts as ours, saved with `Application.save()`, and a
`ProjectionRunner` whose materialised view writes the same rows as our three projections
(order, payment, "payments to issue" item), one transaction per event with its tracking record,
as the library's projections do.
"""

from __future__ import annotations

from functools import singledispatchmethod
from urllib.parse import urlsplit

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import Tracking
from eventsourcing.postgres import PostgresTrackingRecorder
from eventsourcing.projection import Projection
from psycopg.sql import SQL

from bench import tables


def peer_env(url: str) -> dict[str, str]:
    parts = urlsplit(url)
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": parts.path.lstrip("/"),
        "POSTGRES_HOST": parts.hostname or "127.0.0.1",
        "POSTGRES_PORT": str(parts.port or 5432),
        "POSTGRES_USER": parts.username or "postgres",
        "POSTGRES_PASSWORD": parts.password or "",
        "POSTGRES_POOL_SIZE": "2",
    }


class BenchOrder(Aggregate):
    @event("Placed")
    def __init__(self, *, order_id: str, customer: str, amount: str, currency: str, payment_method: str):
        self.order_id = order_id
        self.customer = customer
        self.amount = amount
        self.currency = currency
        self.payment_method = payment_method

    @event("PaymentStarted")
    def start_payment(self, *, idempotency_key: str) -> None:
        self.idempotency_key = idempotency_key

    @event("PaymentIssued")
    def issue(self, *, payment_id: str) -> None:
        self.payment_id = payment_id

    @event("PaymentFailed")
    def fail(self, *, decline_code: str) -> None:
        self.decline_code = decline_code

    @event("Confirmed")
    def confirm(self) -> None:
        self.status = "confirmed"

    @event("Cancelled")
    def cancel(self, *, reason: str) -> None:
        self.status = "cancelled"


class Shop(Application):
    pass


def order_build(i: int) -> BenchOrder:
    """Order number i with the same history as the seeded log's (bench/seed.py)."""
    order = BenchOrder(
        order_id=f"peer-{i}", customer=f"customer-{i % 1000}", amount="9.99", currency="EUR",
        payment_method="pm_card_visa",
    )  # fmt: skip
    order.start_payment(idempotency_key=f"order-peer-{i}-payment")
    if i % 20 == 2:
        order.fail(decline_code="card_declined")
        order.cancel(reason="payment failed: card_declined")
    elif i % 10 != 0:
        order.issue(payment_id=f"pi_bench_{i}")
        if i % 10 != 1:
            order.confirm()
    return order


class ShopView(PostgresTrackingRecorder):
    """The materialised view: the same tables as the raw baseline, under the prefix `peer`."""

    def __init__(self, datastore, **kwargs):
        super().__init__(datastore, **kwargs)
        self.sql_create_statements.extend(SQL(s) for s in tables.ddl("peer"))
        self.sql = tables.statements("peer")

    def apply(self, statements: list[tuple[str, dict]], tracking: Tracking) -> None:
        with self.datastore.transaction(commit=True) as curs:
            for sql, params in statements:
                curs.execute(sql, params)
            self._insert_tracking(curs, tracking)


class ShopProjection(Projection[ShopView]):
    name = "peer_shop"

    @singledispatchmethod
    def process_event(self, domain_event, tracking: Tracking) -> None:
        self.view.apply([], tracking)  # a fact this view does not need: only the tracking

    @process_event.register(BenchOrder.Placed)  # type: ignore[attr-defined]  # made by @event
    def _(self, e, tracking: Tracking) -> None:
        row = {
            "order_id": str(e.originator_id), "customer": e.customer, "amount": e.amount, "currency": e.currency,
            "payment_method": e.payment_method, "at": e.timestamp, "position": tracking.notification_id,
            "payload": tables.json_payload(e.order_id, e.customer, e.amount, e.currency, e.payment_method),
        }  # fmt: skip
        s = self.view.sql
        self.view.apply(
            [(s["order_insert"], row), (s["payment_insert"], row), (s["item_open"], row)], tracking
        )

    @process_event.register(BenchOrder.PaymentIssued)  # type: ignore[attr-defined]  # made by @event
    def _(self, e, tracking: Tracking) -> None:
        row = self._row(e, tracking, payment_id=e.payment_id, closed_by="PaymentIssued")
        s = self.view.sql
        self.view.apply([(s["payment_issued"], row), (s["item_close"], row)], tracking)

    @process_event.register(BenchOrder.PaymentFailed)  # type: ignore[attr-defined]  # made by @event
    def _(self, e, tracking: Tracking) -> None:
        row = self._row(e, tracking, decline_code=e.decline_code, closed_by="PaymentFailed")
        s = self.view.sql
        self.view.apply([(s["payment_failed"], row), (s["item_close"], row)], tracking)

    @process_event.register(BenchOrder.Confirmed)  # type: ignore[attr-defined]  # made by @event
    def _(self, e, tracking: Tracking) -> None:
        self.view.apply([(self.view.sql["order_confirmed"], self._row(e, tracking))], tracking)

    @process_event.register(BenchOrder.Cancelled)  # type: ignore[attr-defined]  # made by @event
    def _(self, e, tracking: Tracking) -> None:
        row = self._row(e, tracking, reason="payment failed", closed_by="OrderCancelled")
        s = self.view.sql
        self.view.apply([(s["order_cancelled"], row), (s["item_close"], row)], tracking)

    @staticmethod
    def _row(e, tracking: Tracking, **extra) -> dict:
        # The aggregate id stands for the order id: the peer's events carry only the changed fields.
        return {"order_id": str(e.originator_id), "at": e.timestamp, "position": tracking.notification_id,
                **extra}  # fmt: skip

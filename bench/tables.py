"""Tables equivalent to our three read models (order, payment, TODO item), for the baselines.

Declared here rather than copied from the project's tables with LIKE, so the baselines keep the
same shape while the project's models change (the lead is rewriting them).
"""

from __future__ import annotations

import json


def ddl(prefix: str) -> list[str]:
    return [
        f"""CREATE TABLE IF NOT EXISTS {prefix}_order (
            order_id varchar(36) PRIMARY KEY, customer varchar(200) NOT NULL, amount numeric(12, 2) NOT NULL,
            currency varchar(3) NOT NULL, payment_method varchar(100) NOT NULL, status varchar(10) NOT NULL,
            payment_id varchar(100) NOT NULL DEFAULT '', cancel_reason text NOT NULL DEFAULT '',
            placed_at timestamptz NOT NULL, confirmed_at timestamptz, cancelled_at timestamptz)""",
        f"CREATE INDEX IF NOT EXISTS {prefix}_order_status ON {prefix}_order (status, placed_at)",
        f"""CREATE TABLE IF NOT EXISTS {prefix}_payment (
            order_id varchar(36) PRIMARY KEY, amount numeric(12, 2) NOT NULL, currency varchar(3) NOT NULL,
            payment_method varchar(100) NOT NULL, status varchar(10) NOT NULL,
            payment_id varchar(100) NOT NULL DEFAULT '', decline_code varchar(100) NOT NULL DEFAULT '',
            requested_at timestamptz NOT NULL, decided_at timestamptz)""",
        f"""CREATE TABLE IF NOT EXISTS {prefix}_item (
            id bigserial PRIMARY KEY, list_name varchar(100) NOT NULL, key varchar(200) NOT NULL,
            status varchar(10) NOT NULL, payload jsonb NOT NULL, opened_at timestamptz NOT NULL,
            opened_position bigint NOT NULL, closed_at timestamptz, closed_position bigint,
            closed_by varchar(100) NOT NULL DEFAULT '', UNIQUE (list_name, key))""",
        f"CREATE INDEX IF NOT EXISTS {prefix}_item_due ON {prefix}_item (list_name, status)",
    ]


def statements(prefix: str) -> dict[str, str]:
    """One statement per read-model change, with named parameters."""
    close = (
        f"UPDATE {prefix}_item SET status = 'done', closed_at = %(at)s, closed_position = %(position)s,"
        f" closed_by = %(closed_by)s WHERE list_name = 'payments_to_issue' AND key = %(order_id)s"
        " AND status <> 'done'"
    )
    return {
        "order_insert": (
            f"INSERT INTO {prefix}_order (order_id, customer, amount, currency, payment_method, status,"
            " placed_at) VALUES (%(order_id)s, %(customer)s, %(amount)s, %(currency)s, %(payment_method)s,"
            " 'placed', %(at)s)"
        ),
        "payment_insert": (
            f"INSERT INTO {prefix}_payment (order_id, amount, currency, payment_method, status, requested_at)"
            " VALUES (%(order_id)s, %(amount)s, %(currency)s, %(payment_method)s, 'pending', %(at)s)"
        ),
        "item_open": (
            f"INSERT INTO {prefix}_item (list_name, key, status, payload, opened_at, opened_position)"
            " VALUES ('payments_to_issue', %(order_id)s, 'open', %(payload)s, %(at)s, %(position)s)"
            " ON CONFLICT (list_name, key) DO UPDATE SET status = 'open', payload = EXCLUDED.payload,"
            " opened_at = EXCLUDED.opened_at, opened_position = EXCLUDED.opened_position"
        ),
        "payment_issued": (
            f"UPDATE {prefix}_payment SET status = 'issued', payment_id = %(payment_id)s, decided_at = %(at)s"
            " WHERE order_id = %(order_id)s"
        ),
        "payment_failed": (
            f"UPDATE {prefix}_payment SET status = 'failed', decline_code = %(decline_code)s,"
            " decided_at = %(at)s WHERE order_id = %(order_id)s"
        ),
        "item_close": close,
        "order_confirmed": (
            f"UPDATE {prefix}_order SET status = 'confirmed', confirmed_at = %(at)s WHERE order_id = %(order_id)s"
        ),
        "order_cancelled": (
            f"UPDATE {prefix}_order SET status = 'cancelled', cancel_reason = %(reason)s, cancelled_at = %(at)s"
            " WHERE order_id = %(order_id)s"
        ),
    }


def json_payload(order_id: str, customer: str, amount: str, currency: str, payment_method: str) -> str:
    return json.dumps(
        {"order_id": order_id, "customer": customer, "amount": amount, "currency": currency,
         "payment_method": payment_method}
    )  # fmt: skip

import decimal
import uuid
from typing import cast

import factory
from django.utils import timezone
from factory import fuzzy

from eventstore.models import Event
from orders.commands import order_place


class PlacedOrderFactory(factory.Factory):
    """Places an order through the real command (events, not rows); returns the order id."""

    class Meta:
        model = dict

    amount = fuzzy.FuzzyDecimal(1, 500, precision=2)
    currency = fuzzy.FuzzyChoice(["EUR", "USD", "GBP"])
    customer = factory.Faker("user_name")
    payment_method = "pm_card_visa"

    class Params:
        declined = factory.Trait(payment_method="pm_card_chargeCustomerFail")

    @classmethod
    def _create(cls, model_class, **kwargs) -> str:
        kwargs["amount"] = decimal.Decimal(kwargs["amount"])
        return order_place(**kwargs)


def order_placed(**overrides: object) -> str:
    """A placed order's id (PlacedOrderFactory, typed as what its `_create` returns)."""
    return cast(str, PlacedOrderFactory(**overrides))


# The projections that read an OrderPlaced, so park its case when it cannot be read.
PARKS_ON_ORDER_PLACED = ["orders", "payments", "todo:payments_to_issue"]


def poison_order_placed(data: dict | None = None, *, with_case: bool = True) -> Event:
    """An OrderPlaced written past the append's checks (by SQL, or by an older release), of its own
    business case (or of none, `with_case=False`): by default without its amount."""
    order_id = str(uuid.uuid4())
    fields = (
        {"customer": "ada", "currency": "EUR", "payment_method": "pm_card_visa"} if data is None else data
    )
    return Event.objects.create(
        stream_id=f"order-{order_id}",
        stream_version=1,
        type="OrderPlaced",
        data={"order_id": order_id, **fields},
        correlation_id=order_id if with_case else "",
        recorded_at=timezone.now(),
    )

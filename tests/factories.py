import decimal

import factory
from factory import fuzzy

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

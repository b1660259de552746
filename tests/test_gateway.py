"""The in-process gateway keeps Stripe's idempotency: the first request with a key decides."""

import decimal

import pytest

from payments.gateway import Charge, InProcessGateway, PaymentDeclined
from payments.models import InProcessCharge

pytestmark = pytest.mark.django_db


def charge(key: str, method: str) -> Charge:
    return InProcessGateway().charge(
        idempotency_key=key,
        order_id=key,
        amount=decimal.Decimal("9.99"),
        currency="EUR",
        payment_method=method,
    )


def test_the_same_key_gets_the_same_charge_and_never_a_second_one():
    first = charge("order-1-payment", "pm_card_visa")
    again = charge("order-1-payment", "pm_card_visa")
    assert again == first
    assert InProcessCharge.objects.filter(idempotency_key="order-1-payment").count() == 1


def test_a_decline_is_remembered_for_its_key_even_with_another_card():
    with pytest.raises(PaymentDeclined):
        charge("order-2-payment", "pm_card_chargeCustomerFail")
    with pytest.raises(PaymentDeclined):
        charge("order-2-payment", "pm_card_visa")
    assert InProcessCharge.objects.count() == 1

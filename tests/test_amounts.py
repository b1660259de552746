"""Property tests: any amount either round-trips exactly through the log or is refused with a reason."""

import decimal

from hypothesis import given
from hypothesis import strategies as st

from eventstore.events import event_decode, event_encode
from orders.commands import MAX_AMOUNT, OrderRejected, parse_amount
from orders.events import OrderPlaced
from payments.gateway import MIN_AMOUNTS, to_minor_units

amounts = st.one_of(
    st.decimals(allow_nan=True, allow_infinity=True),
    st.decimals(min_value=0, max_value=10**7, places=2),
    # One decimal too many: refused, never rounded to the cent.
    st.decimals(min_value=0, max_value=10**7, places=3),
    st.text(max_size=12),
)


@given(amounts)
def test_an_amount_is_accepted_exactly_or_refused(raw):
    try:
        value = parse_amount(raw)
    except OrderRejected as exc:
        assert str(exc)
        return
    assert decimal.Decimal(0) < value <= MAX_AMOUNT
    assert value == decimal.Decimal(str(raw).strip())  # never rounded behind the user's back
    if value < MIN_AMOUNTS["EUR"]:
        return  # below the gateway's smallest charge: OrderPlaced refuses it (tests/test_contract.py)
    event = OrderPlaced(
        order_id="o", customer="c", amount=value, currency="EUR", payment_method="pm_card_visa"
    )
    assert event_decode("OrderPlaced", event_encode(event)) == event
    assert to_minor_units(value) == int(value * 100)

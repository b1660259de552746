"""The Stripe adapter over real HTTP against localstripe (the official SDK, no mocks)."""

import decimal
import socket

import pytest

from payments.gateway import GatewayUnavailable, PaymentDeclined, StripeGateway


def charge(gateway, key, method):
    return gateway.charge(
        idempotency_key=key,
        order_id=key,
        amount=decimal.Decimal("12.50"),
        currency="EUR",
        payment_method=method,
    )


def test_a_visa_card_is_charged(localstripe):
    gateway = StripeGateway(api_key="sk_test_localstripe", api_base=localstripe)
    result = charge(gateway, "order-1", "pm_card_visa")
    assert result.payment_id.startswith("pi_")


def test_a_declined_card_is_a_business_failure(localstripe):
    gateway = StripeGateway(api_key="sk_test_localstripe", api_base=localstripe)
    with pytest.raises(PaymentDeclined) as excinfo:
        charge(gateway, "order-2", "pm_card_chargeCustomerFail")
    assert excinfo.value.code == "card_declined"
    assert "declined" in excinfo.value.message


def test_an_unreachable_stripe_is_transient():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once the socket closes
    gateway = StripeGateway(api_key="sk_test_x", api_base=f"http://127.0.0.1:{port}", timeout=2)
    with pytest.raises(GatewayUnavailable, match="APIConnectionError"):
        charge(gateway, "order-3", "pm_card_visa")


@pytest.mark.django_db
def test_the_process_runs_on_stripe_when_configured(localstripe, settings, place_orders):
    """PAYMENT_GATEWAY=stripe: process_todos pays through localstripe and records the PaymentIntent id."""
    from django.core.management import call_command

    from orders.models import Order

    settings.PAYMENT_GATEWAY = "stripe"
    settings.STRIPE_API_KEY = "sk_test_localstripe"
    settings.STRIPE_API_BASE = localstripe
    paid, failed = place_orders(visa=2, declined=1)
    call_command("process_todos")
    orders = {o.order_id: o for o in Order.objects.all()}
    assert all(orders[o].status == "confirmed" and orders[o].payment_id.startswith("pi_") for o in paid)
    assert orders[failed[0]].status == "cancelled"


def test_a_request_stripe_rejects_without_a_decline_code_is_a_failed_attempt_not_a_decline(localstripe):
    """localstripe answers an unknown payment method with a bare 404: could be our configuration,
    so it must not cancel orders; the runner records it as a failed attempt and parks it in view."""
    import stripe

    gateway = StripeGateway(api_key="sk_test_localstripe", api_base=localstripe)
    with pytest.raises(stripe.InvalidRequestError):
        charge(gateway, "order-4", "pm_card_mastercard")


@pytest.mark.django_db(transaction=True)
def test_a_batch_is_charged_through_stripe_from_several_threads(
    localstripe, settings, place_orders, use_gateway
):
    """Outside a test transaction the runner charges a batch in a small thread pool (each thread with
    its own database connection, closed after the item); every order still gets one PaymentIntent."""
    from django.db.models import Count

    from eventstore.models import Event
    from todolists.runner import todo_list_work

    settings.PAYMENT_GATEWAY = "stripe"
    settings.STRIPE_API_KEY = "sk_test_localstripe"
    settings.STRIPE_API_BASE = localstripe
    import threading

    threads = []

    class NotingStripeGateway(StripeGateway):
        def charge(self, **request):
            threads.append(threading.current_thread())
            return super().charge(**request)

    use_gateway(NotingStripeGateway(api_key=settings.STRIPE_API_KEY, api_base=settings.STRIPE_API_BASE))
    paid, failed = place_orders(visa=6, declined=2)
    result = todo_list_work(list_name="payments_to_issue", batch=8)
    assert (result.worked, result.failed) == (8, 0)
    assert len(threads) == 8 and threading.main_thread() not in threads
    outcomes = Event.objects.filter(type__in=["PaymentIssued", "PaymentFailed"])
    assert sorted(outcomes.values_list("correlation_id", flat=True)) == sorted(paid + failed)
    assert {r["n"] for r in outcomes.values("correlation_id").annotate(n=Count("pk"))} == {1}
    assert set(outcomes.filter(type="PaymentFailed").values_list("correlation_id", flat=True)) == set(failed)


def test_find_charge_without_a_search_endpoint_cannot_tell_and_says_so(localstripe):
    """localstripe has no /v1/payment_intents/search: give-up must refuse, never guess "no charge"."""
    gateway = StripeGateway(api_key="sk_test_localstripe", api_base=localstripe)
    charge(gateway, "order-5", "pm_card_visa")
    with pytest.raises(GatewayUnavailable, match="cannot search PaymentIntents"):
        gateway.find_charge(idempotency_key="order-5")

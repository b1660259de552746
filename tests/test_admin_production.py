"""The admin under production settings, in a real headless Chromium: gunicorn with DEBUG off and
BEHIND_PROXY on, behind a TLS-terminating proxy, static files from `collectstatic` via WhiteNoise."""

import urllib.error
import urllib.request

import pytest

from eventstore.projections import projections_catch_up
from orders.models import Order
from tests.factories import PlacedOrderFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_the_admin_is_secure_behind_a_tls_proxy(production_admin, chromium, django_user_model, no_nudge):
    django_user_model.objects.create_superuser("ops", password="pw-ops-12345")
    order_id = PlacedOrderFactory()
    projections_catch_up()  # the order's row in the admin
    base = production_admin["https"]
    context = chromium.new_context(ignore_https_errors=True)  # the proxy's self-signed certificate
    page = context.new_page()
    page.set_default_timeout(15000)

    static = []
    page.on("response", lambda r: static.append(r) if "/static/admin/css/" in r.url else None)
    response = page.goto(f"{base}/admin/login/")
    assert response.status == 200
    hsts = response.headers["strict-transport-security"]
    assert "max-age=31536000" in hsts and "includeSubDomains" in hsts
    assert static and all(r.status == 200 and "text/css" in r.headers["content-type"] for r in static)

    page.fill("#id_username", "ops")
    page.fill("#id_password", "pw-ops-12345")
    page.click("input[type=submit]")
    assert page.locator("#site-name").inner_text() == "TODO lists: debug"
    cookies = {c["name"]: c for c in context.cookies()}
    assert cookies["sessionid"]["secure"] and cookies["sessionid"]["httpOnly"]
    assert cookies["csrftoken"]["secure"]

    # An admin action is a POST with the CSRF token: the form carries it and the action runs.
    page.goto(f"{base}/admin/orders/order/?q={order_id}")
    page.check("#result_list tbody input.action-select")
    page.select_option("select[name=action]", "cancel")
    page.click("button[name=index]")
    assert f"Order {order_id} is now cancelled" in page.locator("ul.messagelist").inner_text()
    projections_catch_up()
    assert Order.objects.get(order_id=order_id).status == "cancelled"

    # The same POST without the token is refused, even with the session cookie.
    forged = context.request.post(
        f"{base}/admin/orders/order/",
        form={"action": "cancel", "_selected_action": order_id, "index": "0"},
        headers={"Origin": base, "Referer": f"{base}/admin/orders/order/"},
    )
    assert forged.status == 403 and "CSRF" in forged.text()
    context.close()


def test_plain_http_to_the_app_server_is_sent_to_https(production_admin):
    """Without the proxy's X-Forwarded-Proto the request is not trusted as secure: redirect."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    with pytest.raises(urllib.error.HTTPError) as excinfo:
        opener.open(f"{production_admin['http']}/admin/login/", timeout=10)
    assert excinfo.value.code == 301
    assert excinfo.value.headers["Location"].startswith("https://")

"""The admin as an operator sees it, in a real headless Chromium."""

import pytest
from django.core.management import call_command

from tests.factories import PlacedOrderFactory

pytestmark = pytest.mark.django_db(transaction=True)


def login(page, username: str, password: str) -> None:
    page.goto(f"{page.base_url}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")


def test_an_operator_follows_an_order_through_the_admin(browser_page, django_user_model, no_nudge, tmp_path):
    page = browser_page
    django_user_model.objects.create_superuser("ops", password="pw-ops-12345")
    paid = PlacedOrderFactory()
    declined = PlacedOrderFactory(declined=True)
    call_command("process_todos")

    login(page, "ops", "pw-ops-12345")
    assert page.locator("#site-name").inner_text() == "TODO lists: debug"

    page.goto(f"{page.base_url}/admin/orders/order/?q={declined}")
    row = page.locator("#result_list tbody tr")
    assert row.count() == 1 and "cancelled" in row.inner_text()

    page.goto(f"{page.base_url}/admin/eventstore/event/?q={paid}")
    types = page.locator("#result_list tbody td.field-type").all_inner_texts()
    assert types == ["OrderPlaced", "PaymentStarted", "PaymentIssued", "OrderConfirmed"]

    page.goto(f"{page.base_url}/admin/todolists/todoitem/?list_name=payments_to_issue&state=all")
    assert page.locator("#result_list tbody tr").count() == 2
    assert "done" in page.locator("#result_list tbody").inner_text()
    # Read-only: no add button anywhere, and an event page has no save button.
    assert page.locator(".object-tools a.addlink").count() == 0
    page.goto(f"{page.base_url}/admin/eventstore/event/")
    page.locator("#result_list tbody th a").first.click()
    assert page.locator("input[name=_save]").count() == 0
    assert "order_id" in page.locator("pre").first.inner_text()
    page.screenshot(path=str(tmp_path / "event.png"), full_page=True)
    assert (tmp_path / "event.png").stat().st_size > 10_000


def test_a_non_staff_user_cannot_get_in(browser_page, django_user_model):
    page = browser_page
    django_user_model.objects.create_user("customer", password="pw-customer-123")
    login(page, "customer", "pw-customer-123")
    assert (
        "not authorized" in page.locator(".errornote").inner_text()
        or "correct username" in page.locator(".errornote").inner_text()
    )
    page.goto(f"{page.base_url}/admin/eventstore/event/")
    assert "/admin/login/" in page.url

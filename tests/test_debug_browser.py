"""Acceptance of the debug view, as an operator sees it in Debian's Chromium at 1280 px: each
check within two clicks of /admin/. The README's screenshots come from test_screenshots.py
(UPDATE_SCREENSHOTS=1); SCREENSHOT_DIR=folder keeps these."""

import os
from pathlib import Path

import pytest

from todolists.ui.status import todo_lists_status

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def operator(browser_page, django_user_model, seeded_process, wait_until, tmp_path, monkeypatch):
    """Logged in as a superuser at /admin/, on the seeded process, with payments_to_issue stuck."""
    from eventstore.projections import registry as projections

    # The suite's own test projection is no part of the system the screenshots show.
    monkeypatch.delitem(projections._items, "test_applied", raising=False)
    wait_until(lambda: any(s.stuck for s in todo_lists_status()), timeout=10, message="a stuck list")
    page = browser_page
    page.set_viewport_size({"width": 1280, "height": 900})
    django_user_model.objects.create_superuser("ops", password="pw-ops-12345")
    page.goto(f"{page.base_url}/admin/login/")
    page.fill("#id_username", "ops")
    page.fill("#id_password", "pw-ops-12345")
    page.click("input[type=submit]")
    page.wait_for_selector("#todo-dashboard")
    page.shots = Path(os.environ.get("SCREENSHOT_DIR") or tmp_path)
    page.shots.mkdir(parents=True, exist_ok=True)
    page.ids = seeded_process
    return page


def shoot(page, name: str) -> None:
    path = page.shots / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000


def no_sideways_scroll(page) -> bool:
    """Neither the page nor a table's own scroll box (the admin wraps results in one) is wider
    than the window shows."""
    return page.evaluate(
        "document.documentElement.scrollWidth <= window.innerWidth && "
        "[...document.querySelectorAll('.results, .module')].every(e => e.scrollWidth <= e.clientWidth + 1)"
    )


def test_the_dashboard_shows_all_three_lists_and_marks_the_stuck_one(operator):
    page = operator
    rows = page.locator("#todo-lists tbody tr:not(.error-group)")
    assert rows.count() == 3
    pay = page.locator('#todo-lists tr[data-list="payments_to_issue"]')
    numbers = [pay.locator(f".n-{n}").inner_text() for n in ("open", "due", "retrying", "parked")]
    assert numbers == ["3", "1", "1", "1"]
    assert "STUCK" in pay.inner_text()
    for other in ("orders_to_confirm", "orders_to_cancel"):
        row = page.locator(f'#todo-lists tr[data-list="{other}"]')
        assert "STUCK" not in row.inner_text() and row.locator(".n-done").inner_text() == "1"
    assert "Payments to issue: an item has been due for" in page.locator("#health-reasons").inner_text()
    assert no_sideways_scroll(page)
    shoot(page, "dashboard")


def test_the_map_shows_every_list_and_its_events(operator):
    page = operator
    page.click("text=process map")  # 1
    page.wait_for_selector("#lists")
    for name in ("payments_to_issue", "orders_to_confirm", "orders_to_cancel"):
        assert page.locator(f'#lists [data-list="{name}"]').count() == 1
    events = set(page.locator("#steps [data-event]").evaluate_all("els => els.map(e => e.dataset.event)"))
    assert {"OrderPlaced", "PaymentIssued", "PaymentFailed", "OrderConfirmed", "OrderCancelled"} <= events
    parked = page.locator('#lists [data-list="payments_to_issue"] .n-parked').inner_text()
    assert parked == "1 parked"
    assert no_sideways_scroll(page)
    shoot(page, "process-map")


def test_the_list_page_puts_the_parked_item_before_any_done_one(operator):
    page = operator
    page.click('#todo-lists tr[data-list="payments_to_issue"] td:first-child a')  # 1
    page.wait_for_selector("#result_list")
    statuses = page.locator("#result_list tbody td.field-status").all_inner_texts()
    assert "done" not in statuses and "parked" in statuses
    assert no_sideways_scroll(page)
    shoot(page, "list-page")
    page.click('#changelist-filter a[href*="state=all"]')  # 2
    page.wait_for_url("**state=all**")
    page.wait_for_selector("#result_list")
    statuses = page.locator("#result_list tbody td.field-status").all_inner_texts()
    assert statuses.index("parked") < statuses.index("done")
    assert no_sideways_scroll(page)


def test_the_item_page_names_its_closing_events_and_both_failed_attempts(operator):
    page = operator
    page.click('#todo-lists tr[data-list="payments_to_issue"] .n-parked')  # 1
    page.locator("#result_list tbody th a").first.click()  # 2
    page.wait_for_selector("#why")
    assert page.locator("#closes-on").inner_text().startswith("PaymentIssued, PaymentFailed, OrderCancelled")
    errors = page.locator("#attempts tbody td.error").all_inner_texts()
    assert len(errors) == 2 and all("injected transient failure (503)" in e for e in errors)
    assert "gave up after 2 attempts" in page.locator("#operator-actions").inner_text()
    assert (
        page.locator("#story-link")
        .get_attribute("href")
        .endswith(f"/admin/orders/order/{page.ids['parked']}/change/")
    )
    assert no_sideways_scroll(page)
    shoot(page, "item-page")


def test_retry_then_reload_shows_the_item_open_again_without_a_cluster(operator):
    page = operator
    page.click('#todo-lists tr[data-list="payments_to_issue"] .n-parked')  # 1
    page.locator("#result_list tbody input.action-select").first.check()
    page.select_option("select[name=action]", "retry_now")
    page.click("button[name=index]")  # 2
    page.wait_for_selector(".messagelist")
    assert "is now open and due now" in page.locator(".messagelist").inner_text()
    page.goto(f"{page.base_url}/admin/todolists/todoitem/?list_name=payments_to_issue&q={page.ids['parked']}")
    assert page.locator("#result_list tbody td.field-status").all_inner_texts() == ["open"]

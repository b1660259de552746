"""Issue 14 in Chromium: the process picture, the charts, live refresh and a past moment, at 1280
and 390 px, light and dark. Set SCREENSHOT_DIR=docs/screenshots to refresh the README's shots."""

import os
from pathlib import Path

import pytest

from eventstore.projections import projections_catch_up
from tests.test_add_a_step import receipts_step  # noqa: F401 (a fixture)
from todolists.lists import registry as todo_lists
from todolists.process import registry as steps
from todolists.ui.status import todo_lists_status

pytestmark = pytest.mark.django_db(transaction=True)

SIZES = [(1280, "light"), (390, "dark"), (1280, "dark"), (390, "light")]


@pytest.fixture
def viewer(browser_page, django_user_model, tmp_path):
    page = browser_page
    django_user_model.objects.create_superuser("viewer", password="pw-viewer-12345")
    page.goto(f"{page.base_url}/admin/login/")
    page.fill("#id_username", "viewer")
    page.fill("#id_password", "pw-viewer-12345")
    page.click("input[type=submit]")
    page.wait_for_selector("#todo-dashboard")
    page.shots = Path(os.environ.get("SCREENSHOT_DIR") or tmp_path)
    page.shots.mkdir(parents=True, exist_ok=True)
    return page


def registry_pairs() -> set[tuple[str, str]]:
    """Every (step -> event), (event -> list) and (list -> its automation) pair the registries declare."""
    pairs = {(f"step:{s.name}", f"event:{e}") for s in steps.all() for e in s.records}
    for t in todo_lists.all():
        automation = f"step:{t.title or t.name}"
        pairs |= {(automation, f"event:{e}") for e in t.records}
        pairs |= {(f"event:{e}", f"list:{t.name}") for e in (*t.opened_by, *t.closed_by)}
        pairs.add((f"list:{t.name}", automation))
    return pairs


def drawn_arrows(page) -> set[tuple[str, str]]:
    """Arrows with a visible length on the picture."""
    found = page.locator("svg.process-svg path.arrow").evaluate_all(
        "els => els.filter(e => e.getTotalLength() > 10 && e.getBoundingClientRect().width + "
        "e.getBoundingClientRect().height > 0).map(e => [e.dataset.from, e.dataset.to])"
    )
    return {tuple(p) for p in found}


@pytest.mark.parametrize(("width", "scheme"), SIZES)
def test_the_map_draws_an_arrow_for_every_pair_of_the_registries(
    viewer,
    receipts_step,  # noqa: F811
    seeded_process,
    wait_until,
    width,
    scheme,
):
    wait_until(lambda: any(s.stuck for s in todo_lists_status()), timeout=10, message="a stuck list")
    page = viewer
    page.set_viewport_size({"width": width, "height": 900})
    page.emulate_media(color_scheme=scheme)
    page.goto(f"{page.base_url}/admin/process-map/")
    page.wait_for_selector("svg.process-svg")
    pairs = registry_pairs()
    assert ("event:OrderConfirmed", "list:receipts_to_send") in pairs
    assert drawn_arrows(page) == pairs
    # The receipts list sits after the list whose closing event opens it, in process order.
    x = {n: page.locator(f'[data-node="{n}"] rect').bounding_box()["x"] for n in
         ("list:payments_to_issue", "list:orders_to_confirm", "list:receipts_to_send")}  # fmt: skip
    assert x["list:payments_to_issue"] < x["list:orders_to_confirm"] < x["list:receipts_to_send"]
    # Live state in words and colour: the seeded payments list is stuck with one parked item.
    pay = page.locator('[data-node="list:payments_to_issue"]')
    shown = " ".join(pay.locator("text").all_text_contents())  # drawn text, not the tooltip
    assert "1 parked" in shown and "STUCK" in shown
    colour = pay.locator("rect").evaluate("r => getComputedStyle(r).stroke")
    ok_colour = page.locator('[data-node="list:orders_to_cancel"] rect').evaluate(
        "r => getComputedStyle(r).stroke"
    )
    assert colour != ok_colour
    # Each node is a link to its list, event type or command's events.
    assert "list_name=payments_to_issue" in pay.get_attribute("href")
    assert "type__exact=OrderPlaced" in page.locator('[data-node="event:OrderPlaced"]').get_attribute("href")
    page.locator('[data-node="event:OrderPlaced"]').click()
    page.wait_for_selector("#result_list")
    assert set(page.locator("#result_list td.field-type").all_inner_texts()) == {"OrderPlaced"}
    page.go_back()
    # Readable: the page never scrolls sideways; the picture scrolls in its own box at 390 px.
    page.wait_for_selector("svg.process-svg")
    wide = page.evaluate(
        "[...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > window.innerWidth + 1 && !e.closest('.view-scroll')).map(e => e.tagName + '.' + e.className).slice(0, 5)"
    )
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), wide
    font = page.locator('[data-node="list:payments_to_issue"] .node-title').evaluate(
        "t => parseFloat(getComputedStyle(t).fontSize) * t.getScreenCTM().a"
    )
    assert font >= 11
    page.screenshot(path=str(page.shots / f"process-map-{width}-{scheme}.png"), full_page=True)


def series(page, chart_id: str, name: str) -> list[float]:
    values = page.locator(f'#chart-{chart_id} polyline[data-series="{name}"]').get_attribute("data-values")
    return [float(v) for v in values.split(",")]


@pytest.mark.parametrize(("width", "scheme"), [(1280, "light"), (390, "dark")])
def test_the_charts_show_the_burst_the_test_created(viewer, place_orders, width, scheme):
    page = viewer
    page.set_viewport_size({"width": width, "height": 900})
    page.emulate_media(color_scheme=scheme)
    place_orders(12, 0)  # a burst: twelve items opened on payments_to_issue within seconds
    projections_catch_up()
    page.goto(f"{page.base_url}/admin/")
    page.wait_for_selector("#charts")
    opened = series(page, "payments_to_issue-throughput", "opened")
    assert len(opened) == 60 and sum(opened[-2:]) == 12  # per minute; the burst may straddle a minute
    assert series(page, "payments_to_issue-backlog", "open")[-1] == 12
    assert sum(series(page, "orders_to_confirm-throughput", "opened")) == 0
    # The charts fit the window (the lists' table is another page's concern).
    assert page.evaluate(
        "(c => c.getBoundingClientRect().right <= window.innerWidth + 1)(document.querySelector('#charts .chart'))"
    )
    page.locator("#charts").screenshot(path=str(page.shots / f"charts-{width}-{scheme}.png"))
    page.click("#charts .chart-window a")  # the last day, by hour
    page.wait_for_url("**window=day**")
    assert len(series(page, "payments_to_issue-throughput", "opened")) == 24


@pytest.mark.parametrize(("width", "scheme"), SIZES)
def test_a_list_page_charts_the_burst_the_test_created(viewer, place_orders, width, scheme):
    page = viewer
    page.set_viewport_size({"width": width, "height": 900})
    page.emulate_media(color_scheme=scheme)
    place_orders(12, 0)  # a burst on payments_to_issue, nothing on the other lists
    projections_catch_up()
    page.goto(f"{page.base_url}/admin/todolists/todoitem/?list_name=payments_to_issue")
    page.wait_for_selector("#charts")
    assert page.locator("#charts .chart-list").evaluate_all("ls => ls.map(l => l.dataset.list)") == [
        "payments_to_issue"
    ]
    opened = series(page, "payments_to_issue-throughput", "opened")
    assert len(opened) == 60 and sum(opened[-2:]) == 12  # the burst may straddle a minute
    # The legend tells the whole hour, whichever minute the burst fell in.
    legend = page.locator("#chart-payments_to_issue-throughput .chart-legend").inner_text()
    assert " ".join(legend.split()) == "opened 12 closed 0 in the last hour"
    assert [series(page, "payments_to_issue-backlog", s)[-1] for s in ("open", "due", "parked")] == [
        12,
        12,
        0,
    ]
    # Drawn, not only listed: the open line rises to the top of its chart at the burst.
    line = page.locator('#chart-payments_to_issue-backlog polyline[data-series="open"]').bounding_box()
    assert line["height"] > 40
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.locator("#charts").scroll_into_view_if_needed()
    page.screenshot(path=str(page.shots / f"list-charts-{width}-{scheme}.png"), full_page=True)
    page.click("#charts .chart-window a")  # the last day, by hour, still this list's items
    page.wait_for_url("**window=day**")
    assert len(series(page, "payments_to_issue-throughput", "opened")) == 24
    assert page.locator("#result_list tbody tr").count() == 12


def test_the_dashboard_updates_a_changed_count_without_a_reload(viewer, place_orders, settings, wait_until):
    settings.TODO_LIVE_INTERVAL_SECONDS = 1
    page = viewer
    page.goto(f"{page.base_url}/admin/")
    page.wait_for_selector("#live-toggle:visible")
    page.evaluate("window.notReloaded = true")
    pay = '#todo-lists tr[data-list="payments_to_issue"] .n-open'
    assert page.locator(pay).inner_text() == "0"
    place_orders(1, 0)
    projections_catch_up()
    page.wait_for_function(
        "sel => document.querySelector(sel).textContent.trim() === '1'", arg=pay, timeout=15000
    )
    assert page.evaluate("window.notReloaded === true")
    assert "live-changed" in page.locator(pay).get_attribute("class")
    # Paused, it stops asking; the switch says so.
    page.click("#live-toggle")
    assert page.locator("#live-toggle").get_attribute("aria-pressed") == "true"
    assert page.locator("#live-status").inner_text() == "paused"


def test_an_eight_character_prefix_finds_the_order_from_the_dashboard(viewer, place_orders):
    [order], _ = place_orders(1, 0)
    projections_catch_up()  # the order's page reads its read model
    page = viewer
    page.set_viewport_size({"width": 390, "height": 900})
    page.goto(f"{page.base_url}/admin/")
    page.fill("#id-search-q", order[:8])
    page.click("#id-search input[type=submit]")
    page.wait_for_selector("#search-results")
    page.click(f'#search-results tr[data-kind="business case (order)"] a:text("{order}")')
    page.wait_for_url(f"**/admin/orders/order/{order}/change/")


def test_the_dashboard_shows_the_lists_at_a_past_moment(viewer, seeded_process, place_orders):
    from eventstore.store import log_head

    projections_catch_up()
    position = log_head()
    place_orders(3, 0)
    projections_catch_up()
    page = viewer
    page.goto(f"{page.base_url}/admin/")
    page.fill("#as-of-at", str(position))
    page.click("#as-of-form input[type=submit]")
    page.wait_for_selector("#as-of-lists")
    pay = page.locator('#as-of-lists tr[data-list="payments_to_issue"]')
    assert pay.locator(".n-open").inner_text() == "3" and pay.locator(".n-parked").inner_text() == "1"
    page.screenshot(path=str(page.shots / "past-moment.png"), full_page=True)

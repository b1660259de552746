"""Every debug page, in a real headless Chromium, in each state of the process (ok, failing: the
gateway failing with parked items, halted: a poison event with no business case, parked: a poison
event that parked its order), at 1280 and 390 px, in light and dark
mode. Asserts what an operator would otherwise find by squinting: no page scrolls sideways at
1280 px (nor the dashboard at 390 px), and no text on the dashboard is below WCAG's 4.5:1 contrast.

UPDATE_SCREENSHOTS=1 writes the PNGs to docs/screenshots/ (the README shows them); otherwise they go
to a temporary folder and are only checked for being rendered."""

import os
from pathlib import Path

import pytest
from django.core.management import call_command
from django.urls import reverse

from eventstore.models import Event
from tests.factories import PlacedOrderFactory, poison_order_placed
from todolists.models import TodoItem

pytestmark = pytest.mark.django_db(transaction=True)

WIDTHS = (1280, 390)
SCHEMES = ("light", "dark")
DOCS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"

# WCAG 2.x contrast of every visible text node against the background it is drawn on (the first
# opaque background up its ancestors, semi-transparent ones composited on the way). Returns the
# texts below the ratio, with both colours, so a failure says what to fix.
CONTRAST_JS = """
(minimum) => {
  const parse = (c) => { const m = c.match(/rgba?\\(([^)]+)\\)/); if (!m) return null;
    const p = m[1].split(/[ ,\\/]+/).filter(Boolean).map(Number); return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1]; };
  const over = (top, bottom) => [0, 1, 2].map(i => top[i] * top[3] + bottom[i] * (1 - top[3])).concat([1]);
  const lum = (c) => { const [r, g, b] = c.slice(0, 3).map(v => { v /= 255;
    return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); }); return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
  const background = (el) => { const layers = [];
    for (let e = el; e; e = e.parentElement) { const c = parse(getComputedStyle(e).backgroundColor);
      if (c && c[3] > 0) { layers.push(c); if (c[3] >= 1) break; } }
    let bg = [255, 255, 255, 1];
    if (!layers.length || layers[layers.length - 1][3] < 1) { const root = parse(getComputedStyle(document.documentElement).backgroundColor); if (root && root[3] > 0) bg = over(root, bg); }
    for (const c of layers.reverse()) bg = over(c, bg); return bg; };
  const failures = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const text = n.textContent.trim(); const el = n.parentElement;
    if (!text || !el || el.closest('script, style, svg, noscript, template, [hidden], details:not([open]) > :not(summary)')) continue;
    const s = getComputedStyle(el); const box = el.getBoundingClientRect();
    if (s.visibility !== 'visible' || s.display === 'none' || Number(s.opacity) === 0 || box.width === 0 || box.height === 0) continue;
    const bg = background(el); const fg = over(parse(s.color), bg);
    const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x); const ratio = (a + 0.05) / (b + 0.05);
    if (ratio < minimum) failures.push(`${ratio.toFixed(2)}:1 "${text.slice(0, 40)}" ${s.color} on rgb(${bg.slice(0, 3).map(Math.round)})`);
  }
  return failures;
}
"""


@pytest.fixture
def shots_dir(tmp_path) -> Path:
    folder = DOCS if os.environ.get("UPDATE_SCREENSHOTS") == "1" else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def logged_in(browser_page, django_user_model, monkeypatch):
    from eventstore.projections import registry as projections

    # The suite's own test projection is no part of the system the screenshots show.
    monkeypatch.delitem(projections._items, "test_applied", raising=False)
    django_user_model.objects.create_superuser("ops", password="pw-ops-12345")
    page = browser_page
    page.goto(f"{page.base_url}/admin/login/")
    page.fill("#id_username", "ops")
    page.fill("#id_password", "pw-ops-12345")
    page.click("input[type=submit]")
    page.wait_for_selector("#todo-dashboard")
    return page


def ok_process(no_nudge) -> dict:
    ids = {"confirmed": PlacedOrderFactory(), "cancelled": PlacedOrderFactory(declined=True)}
    call_command("process_todos")
    return ids


def parked_process(no_nudge) -> dict:
    """The ok process, then an OrderPlaced without its amount (written past the append's checks) of
    its own business case, parked, and one more order decided after it."""
    ids = ok_process(no_nudge)
    poison = poison_order_placed()
    ids["confirmed"], ids["poison"] = PlacedOrderFactory(), poison.pk
    call_command("process_todos")
    return ids


def pages_of(ids: dict) -> dict[str, str]:
    order = ids.get("parked") or ids["confirmed"]
    item = TodoItem.objects.get(list_name="payments_to_issue", key=order)
    event = ids.get("poison") or Event.objects.filter(correlation_id=order).order_by("position")[0].pk
    return {
        "dashboard": reverse("admin:index"),
        "list": reverse("admin:todolists_todoitem_changelist") + "?list_name=payments_to_issue&state=all",
        "item": reverse("admin:todolists_todoitem_change", args=[item.pk]),
        "order": reverse("admin:orders_order_change", args=[order]),
        "events": reverse("admin:eventstore_event_changelist"),
        "event": reverse("admin:eventstore_event_change", args=[event]),
    }


def overflow(page, *, boxes: bool) -> int:
    """How many pixels the page is wider than the window (0: no sideways scrolling); with `boxes`,
    also a table's own scroll box (the admin wraps results in one): a column hidden in it is cut off."""
    return page.evaluate(
        """(boxes) => Math.max(document.scrollingElement.scrollWidth - window.innerWidth,
            ...(boxes ? [...document.querySelectorAll('.results, .module, .todo-scroll')].map(e => e.scrollWidth - e.clientWidth - 1) : [0]))""",
        boxes,
    )


@pytest.mark.parametrize("state", ["ok", "failing", "halted", "parked"])
def test_every_page_in_every_state_fits_and_the_dashboard_is_readable(state, request, logged_in, shots_dir):
    ids = {
        "ok": lambda: ok_process(request.getfixturevalue("no_nudge")),
        "failing": lambda: request.getfixturevalue("seeded_process"),
        "halted": lambda: request.getfixturevalue("poison_event"),
        "parked": lambda: parked_process(request.getfixturevalue("no_nudge")),
    }[state]()
    page = logged_in
    # The check can fail: grey on grey is caught.
    page.set_content('<p style="color:#777;background:#888">unreadable</p><p>readable</p>')
    assert [f.split('"')[1] for f in page.evaluate(CONTRAST_JS, 4.5)] == ["unreadable"]
    problems = []
    for name, url in pages_of(ids).items():
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 900})
            for scheme in SCHEMES:
                page.emulate_media(color_scheme=scheme)
                response = page.goto(page.base_url + url)
                assert response.status == 200, f"{name}: {response.status}"
                where = f"{state} {name} at {width} px, {scheme}"
                if (width == 1280 or name == "dashboard") and (
                    wider := overflow(page, boxes=width == 1280)
                ) > 0:
                    problems.append(f"{where}: {wider} px wider than the window")
                if name == "dashboard":
                    problems += [f"{where}: contrast {f}" for f in page.evaluate(CONTRAST_JS, 4.5)]
                path = shots_dir / f"{state}-{name}-{width}-{scheme}.png"
                page.screenshot(path=str(path), full_page=True)
                assert path.stat().st_size > 5_000
    assert not problems, "\n".join(problems)

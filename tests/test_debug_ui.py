"""The debug pages as an operator uses them: the item page's buttons, the poison event's page,
banners where a halted projection hides rows, one time format, and no link that leads nowhere."""

import datetime
import re
from html import unescape
from urllib.parse import urlsplit

import pytest
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from eventstore.models import Event
from eventstore.projections import projection_status
from orders.models import Order
from tests.factories import PlacedOrderFactory
from todolists.models import TodoItem
from todolists.templatetags.todo_debug import when

pytestmark = pytest.mark.django_db

HALTS_ON_ORDER_PLACED = {"orders", "payments", "todo:payments_to_issue"}


def item_of(order_id: str, list_name: str = "payments_to_issue") -> TodoItem:
    return TodoItem.objects.get(list_name=list_name, key=order_id)


def act_url(item: TodoItem, action: str) -> str:
    return reverse("admin:todolists_todoitem_act", args=[item.pk, action])


def test_a_time_shows_once_with_its_zone_and_its_age():
    at = timezone.now() - datetime.timedelta(minutes=3, seconds=12)
    html = when(at)
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", html)
    assert "3 m 12 s ago" in html and f'datetime="{at.isoformat()}"' in html
    assert when(None) == ""


@pytest.mark.parametrize(
    ("state", "action", "event_type"),
    [("parked", "retry", "TodoRetryRequested"), ("retrying", "park", "TodoItemParked")],
)
def test_an_item_button_asks_for_a_reason_then_records_it_with_the_actor(
    admin_client, seeded_process, state, action, event_type
):
    item = item_of(seeded_process[state])
    page = admin_client.get(reverse("admin:todolists_todoitem_change", args=[item.pk])).content.decode()
    assert act_url(item, action) in page  # a plain link: works without JavaScript
    confirm = admin_client.get(act_url(item, action))
    assert confirm.status_code == 200 and 'name="reason"' in confirm.content.decode()
    before = Event.objects.count()
    blank = admin_client.post(act_url(item, action), {"reason": "  "})
    assert "Say why" in blank.content.decode() and Event.objects.count() == before
    done = admin_client.post(act_url(item, action), {"reason": "gateway is back"}, follow=True)
    assert "recorded" in done.content.decode()
    recorded = Event.objects.filter(type=event_type, correlation_id=item.correlation_id).latest("position")
    assert recorded.actor == "admin" and recorded.data["reason"] == "gateway is back"
    why = admin_client.get(reverse("admin:todolists_todoitem_change", args=[item.pk])).context["why"]
    assert "gateway is back" in [a.reason for a in why.actions]


def test_a_refused_button_says_why_and_records_nothing(admin_client, seeded_process):
    done = item_of(seeded_process["confirmed"], "orders_to_confirm")
    before = Event.objects.count()
    page = admin_client.post(act_url(done, "retry"), {"reason": "try again"}).content.decode()
    assert "Refused, nothing was recorded" in page and "is done; there is nothing to retry" in page
    parked = item_of(seeded_process["parked"])
    page = admin_client.post(act_url(parked, "cancel_order"), {"reason": "customer asked"}).content.decode()
    assert "Refused" in page and "payment is in progress" in page
    assert Event.objects.count() == before


def test_cancel_order_and_give_up_from_the_item_page(admin_client, seeded_process, settings):
    stuck = item_of(seeded_process["stuck"])  # never worked: no payment started, so it can be cancelled
    admin_client.post(act_url(stuck, "cancel_order"), {"reason": "customer asked"})
    cancelled = Event.objects.get(type="OrderCancelled", correlation_id=stuck.key)
    assert (cancelled.actor, cancelled.data["reason"]) == ("admin", "customer asked")
    assert Order.objects.get(order_id=stuck.key).status == "cancelled"
    parked = item_of(seeded_process["parked"])
    admin_client.post(act_url(parked, "give_up"), {"reason": "card expired, customer informed"})
    failed = Event.objects.get(type="PaymentFailed", correlation_id=parked.key)
    assert failed.actor == "admin" and "card expired, customer informed" in failed.data["message"]
    confirm_item = item_of(seeded_process["confirmed"], "orders_to_confirm")
    page = admin_client.get(reverse("admin:todolists_todoitem_change", args=[confirm_item.pk]))
    assert 'data-action="give_up"' not in page.content.decode()  # only on the payments list


def test_without_the_permission_a_button_says_which_it_needs(client, django_user_model, seeded_process):
    user = django_user_model.objects.create_user("viewer", password="pw-viewer-123", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__startswith="view_"))
    client.force_login(user)
    item = item_of(seeded_process["parked"])
    page = client.get(reverse("admin:todolists_todoitem_change", args=[item.pk])).content.decode()
    assert "needs the permission todolists.operate_todoitem" in page
    assert client.post(act_url(item, "retry"), {"reason": "x"}).status_code == 403
    assert not Event.objects.filter(type="TodoRetryRequested").exists()


def test_the_history_button_shows_the_items_events_not_an_empty_admin_history(admin_client, seeded_process):
    item = item_of(seeded_process["parked"])
    admin_client.post(act_url(item, "retry"), {"reason": "one more go"})
    history = admin_client.get(reverse("admin:todolists_todoitem_history", args=[item.pk]))
    assert history.status_code == 302
    assert history["Location"] == reverse("admin:orders_order_change", args=[item.key])
    story = admin_client.get(history["Location"]).content.decode()
    assert "TodoItemParked" in story and "TodoRetryRequested" in story


def test_longest_due_counts_from_the_retry_not_from_the_opening(admin_client, seeded_process):
    item = item_of(seeded_process["parked"])
    TodoItem.objects.filter(pk=item.pk).update(opened_at=timezone.now() - datetime.timedelta(hours=2))
    TodoItem.objects.filter(key=seeded_process["stuck"]).update(opened_at=timezone.now())
    admin_client.post(act_url(item, "retry"), {"reason": "again"})
    [pay] = [s for s in admin_client.get(reverse("admin:index")).context["dashboard"].lists if s.due]
    assert pay.oldest_due_age_seconds < 60


def test_parked_payments_say_parked_and_have_a_filter(admin_client, seeded_process):
    url = reverse("admin:payments_payment_changelist")
    parked = admin_client.get(url, {"state": "parked"})
    assert [p.order_id for p in parked.context["cl"].result_list] == [seeded_process["parked"]]
    assert '<td class="field-state">parked</td>' in parked.content.decode()
    pending = {p.order_id for p in admin_client.get(url, {"state": "pending"}).context["cl"].result_list}
    assert seeded_process["parked"] not in pending and seeded_process["retrying"] in pending


def test_no_view_site_link_and_a_glossary_of_the_jargon(admin_client):
    page = admin_client.get(reverse("admin:index")).content.decode()
    assert "View site" not in page
    for term in ("lag", "checkpoint", "log head", "lease"):
        assert f"<dt>{term}</dt>" in page
    assert "lag (events)" in page


def test_demo_help_needs_no_debug_or_secret(monkeypatch):
    import subprocess
    import sys

    env = {k: v for k, v in __import__("os").environ.items() if k not in ("DEBUG", "SECRET_KEY")}
    run = subprocess.run(
        [sys.executable, "manage.py", "demo", "--help"], capture_output=True, text=True, env=env, timeout=60
    )
    assert run.returncode == 0, run.stderr
    assert "--orders" in run.stdout


def test_a_halted_projection_is_said_where_it_hides_rows(admin_client, poison_event):
    poison = poison_event["poison"]
    assert {p.name for p in projection_status() if p.halted} == HALTS_ON_ORDER_PLACED
    orders = admin_client.get(reverse("admin:orders_order_changelist")).content.decode()
    assert f"The orders projection is halted at event #{poison}" in orders
    assert "orders placed after it are not shown here" in orders
    assert poison_event["hidden"] not in orders
    payments = admin_client.get(reverse("admin:payments_payment_changelist")).content.decode()
    assert f"The payments projection is halted at event #{poison}" in payments
    items = admin_client.get(
        reverse("admin:todolists_todoitem_changelist"), {"list_name": "payments_to_issue"}
    )
    assert "The todo:payments_to_issue projection is halted" in items.content.decode()
    others = admin_client.get(
        reverse("admin:todolists_todoitem_changelist"), {"list_name": "orders_to_confirm"}
    )
    assert "halted" not in others.content.decode()


def test_the_poison_events_page_names_what_it_halted_and_one_skip_passes_them_all(admin_client, poison_event):
    poison = poison_event["poison"]
    url = reverse("admin:eventstore_event_change", args=[poison])
    page = admin_client.get(url)
    assert {p.name for p in page.context["halted_here"]} == HALTS_ON_ORDER_PLACED
    html = page.content.decode()
    skip = reverse("admin:eventstore_event_skip", args=[poison])
    assert skip in html and "This event halted 3 projections" in html
    assert not page.context["story_url"]  # no business case: no order's story to link
    admin_client.post(skip, {"reason": "bad import, no amount"})
    assert not any(p.halted for p in projection_status())
    skips = Event.objects.filter(type="ProjectionEventSkipped", causation_id=str(poison))
    assert skips.count() == 3 and {e.actor for e in skips} == {"admin"}
    call_command("process_todos")
    assert Order.objects.filter(order_id=poison_event["hidden"]).exists()
    refused = admin_client.post(skip, {"reason": "again"}).content.decode()
    assert "no projection is halted at event" in refused


def links(html: str) -> set[str]:
    """Same-site page links (not static files, not logout, which is a POST)."""
    found = set()
    for href in re.findall(r'href="([^"]+)"', html):
        href = unescape(href)
        parts = urlsplit(href)
        if parts.scheme or href.startswith(("#", "/static/", "mailto:")) or "logout" in href:
            continue
        found.add(href)
    return found


def crawl_from(client, start_pages: list[str]) -> dict[str, int]:
    """Every link of the start pages, fetched once: their status codes by URL."""
    statuses = {}
    for start in start_pages:
        page = client.get(start)
        assert page.status_code == 200, start
        base = start.split("?")[0]
        for href in links(page.content.decode()):
            url = href if href.startswith("/") else base + href
            if url not in statuses:
                statuses[url] = client.get(url).status_code
    return statuses


def debug_pages(ids: dict) -> list[str]:
    parked = item_of(ids["parked"])
    opened = Event.objects.filter(correlation_id=ids["parked"]).order_by("position")[0]
    pages = [
        reverse("admin:index"),
        reverse("admin:process_map"),
        reverse("admin:todolists_todoitem_changelist") + "?list_name=payments_to_issue",
        reverse("admin:todolists_todoitem_change", args=[parked.pk]),
        reverse("admin:eventstore_event_changelist"),
        reverse("admin:eventstore_event_change", args=[opened.pk]),
        reverse("admin:orders_order_changelist"),
        reverse("admin:orders_order_change", args=[ids["parked"]]),
        reverse("admin:payments_payment_changelist"),
    ]
    if "poison" in ids:
        pages.append(reverse("admin:eventstore_event_change", args=[ids["poison"]]))
    return pages


@pytest.mark.parametrize("state", ["ok", "failing", "halted"])
def test_no_link_of_the_debug_pages_leads_to_a_404_or_a_500(admin_client, request, state, no_nudge):
    if state == "ok":
        ids = {"parked": PlacedOrderFactory()}
        call_command("process_todos")
        ids["parked"] = TodoItem.objects.filter(list_name="payments_to_issue").first().key
    else:
        ids = request.getfixturevalue("poison_event" if state == "halted" else "seeded_process")
    statuses = crawl_from(admin_client, debug_pages(ids))
    broken = {url: code for url, code in statuses.items() if code >= 400}
    assert not broken, broken
    assert len(statuses) > 30

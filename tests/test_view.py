"""Issue 14 outside the browser: the live cache, JavaScript off, the charts' numbers and queries."""

import pytest
from django.urls import reverse

from eventstore.projections import projections_catch_up

pytestmark = pytest.mark.django_db


def test_with_javascript_off_the_dashboard_reloads_itself_unless_paused(admin_client):
    html = admin_client.get(reverse("admin:index")).content.decode()
    assert '<noscript><meta http-equiv="refresh" content="5"></noscript>' in html
    assert 'href="?live=off"' in html
    paused = admin_client.get(reverse("admin:index"), {"live": "off"}).content.decode()
    assert 'http-equiv="refresh"' not in paused and "resume live refresh" in paused


def test_the_numbers_are_computed_once_per_interval_for_every_viewer(
    admin_client, client, django_user_model, place_orders, settings, django_assert_num_queries
):
    from django.core.cache import cache

    cache.clear()
    settings.TODO_LIVE_INTERVAL_SECONDS = 3600  # one interval for the whole test
    first = admin_client.get(reverse("admin:index"))
    place_orders(2, 0)
    other = django_user_model.objects.create_superuser("other", password="pw-other-12345")
    client.force_login(other)
    second = client.get(reverse("admin:index"))
    # The second viewer sees the interval's numbers (no new order), computed for the first one.
    assert second.context["computed_at"] == first.context["computed_at"]
    assert second.context["dashboard"].lists == first.context["dashboard"].lists
    projections_catch_up()
    settings.TODO_LIVE_INTERVAL_SECONDS = 0
    fresh = client.get(reverse("admin:index")).context["dashboard"]
    assert {s.name: s.open for s in fresh.lists}["payments_to_issue"] == 2


def test_the_charts_run_a_fixed_number_of_queries(place_orders, django_assert_max_num_queries):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from todolists.ui.charts import list_charts
    from todolists.ui.status import todo_lists_status

    def count() -> int:
        lists = todo_lists_status()
        with CaptureQueriesContext(connection) as q:
            list_charts(window="hour", lists=lists)
        return len(q)

    place_orders(2, 1)
    projections_catch_up()
    few = count()
    place_orders(20, 5)
    projections_catch_up()
    assert count() == few == 1  # the rollup's buckets of the window


def test_a_prefix_of_six_or_more_finds_orders_items_and_events(admin_client, place_orders):
    from eventstore.models import Event

    [order], _ = place_orders(1, 0)
    projections_catch_up()
    page = admin_client.get(reverse("admin:todo_search"), {"q": order[:8]})
    hits = {(h.kind, h.label) for h in page.context["hits"]}
    assert ("business case (order)", order) in hits
    assert ("stream", f"order-{order}") in hits
    assert ("TODO item", f"payments_to_issue: {order}") in hits
    position = Event.objects.get(stream_id=f"order-{order}").position
    by_position = admin_client.get(reverse("admin:todo_search"), {"q": str(position).zfill(6)})
    assert by_position.status_code == 200
    short = admin_client.get(reverse("admin:todo_search"), {"q": order[:5]})
    assert short.status_code == 400 and "at least 6 characters" in short.content.decode()
    # A list's own search takes a prefix too.
    items = admin_client.get(reverse("admin:todolists_todoitem_changelist"), {"q": order[:8]})
    assert [i.key for i in items.context["cl"].result_list] == [order]


def test_the_item_page_draws_its_timeline_from_the_log(admin_client, seeded_process):
    from todolists.models import TodoItem

    parked = TodoItem.objects.get(list_name="payments_to_issue", key=seeded_process["parked"])
    page = admin_client.get(reverse("admin:todolists_todoitem_change", args=[parked.pk]))
    kinds = [m.kind for m in page.context["timeline"].marks]
    assert kinds == ["opened", "attempt", "attempt", "parked", "now"]
    xs = [m.x for m in page.context["timeline"].marks]
    assert xs == sorted(xs)
    html = page.content.decode()
    assert html.count('class="mark mark-attempt"') == 2 and 'id="timeline"' in html
    done = TodoItem.objects.get(list_name="payments_to_issue", key=seeded_process["confirmed"])
    page = admin_client.get(reverse("admin:todolists_todoitem_change", args=[done.pk]))
    assert [m.kind for m in page.context["timeline"].marks] == ["opened", "closed"]


def test_a_list_page_shows_its_own_charts_for_the_hour_and_the_day(admin_client, place_orders):
    place_orders(3, 0)
    projections_catch_up()
    url = reverse("admin:todolists_todoitem_changelist")
    page = admin_client.get(url, {"list_name": "payments_to_issue"})
    [lc] = page.context["charts"]
    assert lc.name == "payments_to_issue" and len(page.context["cl"].result_list) == 3
    backlog = {s.name: s.values for s in lc.charts[0].series}
    assert (backlog["open"][-1], backlog["due"][-1], backlog["parked"][-1]) == (3, 3, 0)
    html = page.content.decode()
    assert 'id="chart-payments_to_issue-throughput"' in html and "chart-orders_to_confirm" not in html
    assert 'href="?list_name=payments_to_issue&amp;window=day"' in html
    # The window is the charts' parameter, not a filter of the items (no ?e=1 redirect).
    day = admin_client.get(url, {"list_name": "payments_to_issue", "window": "day"})
    assert day.status_code == 200 and len(day.context["cl"].result_list) == 3
    assert [len(s.values) for s in day.context["charts"][0].charts[0].series] == [24, 24, 24]
    # Every list's page has them, the list of all items none.
    assert "charts" not in admin_client.get(url).context


def test_viewers_arriving_while_the_interval_is_computed_are_shown_the_last_one_not_computing_it_too(
    settings, django_assert_num_queries
):
    import time

    from django.core.cache import cache

    from todolists.ui.live import live_snapshot

    cache.clear()
    settings.TODO_LIVE_INTERVAL_SECONDS = 3600
    first = live_snapshot()  # computed, and kept as the last snapshot too
    # As if the interval's snapshot were not there yet while the viewer who claimed it computes.
    now = f"todo-live:hour:{int(time.time() // 3600)}"
    cache.delete(now)
    assert cache.get(f"{now}:computing") is True
    with django_assert_num_queries(0):
        assert live_snapshot().computed_at == first.computed_at

"""The admin is staff-only and read-only: state changes go through commands that append events."""

import pytest
from django.urls import reverse

from eventstore.models import Event
from orders.models import Order
from tests.factories import PlacedOrderFactory
from todolists.models import TodoItem

pytestmark = pytest.mark.django_db


@pytest.fixture
def order_id(no_nudge):
    from django.core.management import call_command

    order_id = PlacedOrderFactory()
    call_command("process_todos")
    return order_id


@pytest.fixture
def staff_client(client, django_user_model):
    user = django_user_model.objects.create_user("operator", password="pw-operator-123", is_staff=True)
    from django.contrib.auth.models import Permission

    user.user_permissions.set(Permission.objects.filter(codename__startswith="view_"))
    client.force_login(user)
    return client


def test_anonymous_and_non_staff_users_are_sent_to_the_login(client, django_user_model, order_id):
    url = reverse("admin:eventstore_event_changelist")
    assert client.get(url).status_code == 302
    client.force_login(django_user_model.objects.create_user("customer", password="pw-customer-123"))
    response = client.get(url)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


@pytest.mark.parametrize(
    "model",
    [
        "eventstore_event",
        "eventstore_projectioncheckpoint",
        "todolists_todoitem",
        "orders_order",
        "payments_payment",
        "payments_inprocesscharge",
    ],
)
def test_every_page_lists_for_staff_and_offers_no_add(staff_client, order_id, model):
    response = staff_client.get(reverse(f"admin:{model}_changelist"))
    assert response.status_code == 200
    assert staff_client.get(reverse(f"admin:{model}_add")).status_code == 403


def test_events_cannot_be_changed_or_deleted_through_the_admin(admin_client, order_id):
    event = Event.objects.first()
    change = reverse("admin:eventstore_event_change", args=[event.pk])
    page = admin_client.get(change)
    assert page.status_code == 200 and b'name="_save"' not in page.content
    assert b"&quot;order_id&quot;" in page.content or b'"order_id"' in page.content  # pretty-printed JSON
    assert admin_client.post(change, {"type": "Edited"}).status_code == 403
    assert (
        admin_client.post(
            reverse("admin:eventstore_event_delete", args=[event.pk]), {"post": "yes"}
        ).status_code
        == 403
    )
    assert Event.objects.get(pk=event.pk).type == event.type


def test_the_event_store_owns_the_event_page_and_other_apps_add_to_it_through_its_hooks(
    admin_client, order_id, monkeypatch
):
    from pathlib import Path

    from django.contrib import admin
    from django.template.loader import get_template

    import eventstore
    from eventstore.admin import EventAdmin
    from eventstore.event_page import EventPanel, event_panels, event_views

    # No app replaces the event store's admin or its page's template: todolists declares its parts.
    assert type(admin.site.get_model_admin(Event)) is EventAdmin
    page = get_template("admin/eventstore/event/change_form.html").origin.name
    assert Path(page).is_relative_to(Path(eventstore.__file__).parent)
    assert "todolists" in event_panels.names() and "skip" in event_views.names()

    # Any app may add a panel, rendered with its own context into the slot it names.
    event = Event.objects.filter(correlation_id=order_id).order_by("position").first()
    note = EventPanel(
        name="a_note",
        templates={"before": "admin/todolists/link.html"},
        context=lambda request, e: {"url": f"/notes/{e.pk}/", "text": f"a note on {e.type}"},
    )
    monkeypatch.setitem(event_panels._items, note.name, note)
    html = admin_client.get(reverse("admin:eventstore_event_change", args=[event.pk])).content.decode()
    mine = html.index(f'<a href="/notes/{event.pk}/">a note on OrderPlaced</a>')
    assert mine < html.index('class="form-row') < html.index('id="event-links"')  # before the fields
    assert 'class="historylink">The order\'s story</a>' in html  # todolists' link in the tools
    # A page under an event finds it first: a missing one is the admin's "does not exist" redirect.
    missing = admin_client.get(reverse("admin:eventstore_event_skip", args=[10**9]))
    assert missing.status_code == 302 and missing["Location"] == reverse("admin:index")


def test_search_by_order_id_finds_the_order_and_its_items(staff_client, order_id):
    orders = staff_client.get(reverse("admin:orders_order_changelist"), {"q": order_id})
    assert order_id in orders.content.decode() and orders.context["cl"].result_count == 1
    items = staff_client.get(reverse("admin:todolists_todoitem_changelist"), {"q": order_id})
    assert items.context["cl"].result_count == 2  # payments to issue, orders to confirm
    assert "Key (order_id)" in items.content.decode()  # the key column names the lists' key field
    events = staff_client.get(reverse("admin:eventstore_event_changelist"), {"q": order_id})
    assert len(events.context["cl"].result_list) == Event.objects.filter(correlation_id=order_id).count()


def test_retry_now_is_an_admin_action_that_appends_an_event(admin_client, no_nudge, settings):
    from django.core.management import call_command

    settings.INPROCESS_GATEWAY_FAILURE_RATE = 1.0
    settings.TODO_MAX_ATTEMPTS = 1
    order_id = PlacedOrderFactory()
    call_command("process_todos")
    item = TodoItem.objects.get(list_name="payments_to_issue", key=order_id)
    assert item.status == "parked"
    settings.INPROCESS_GATEWAY_FAILURE_RATE = 0.0
    response = admin_client.post(
        reverse("admin:todolists_todoitem_changelist"),
        {"action": "retry_now", "_selected_action": [item.pk]},
        follow=True,
    )
    assert response.status_code == 200
    retry = Event.objects.get(type="TodoRetryRequested")
    assert retry.actor == "admin" and retry.correlation_id == order_id
    call_command("process_todos")
    assert Order.objects.get(order_id=order_id).status == "confirmed"


def test_an_operator_can_cancel_an_unpaid_order_which_closes_its_payment(admin_client, no_nudge):
    from django.core.management import call_command

    from eventstore.projections import projections_catch_up

    order_id = PlacedOrderFactory()
    projections_catch_up()  # the order shows in the admin; nobody has worked the lists yet
    response = admin_client.post(
        reverse("admin:orders_order_changelist"),
        {"action": "cancel", "_selected_action": [order_id]},
        follow=True,
    )
    assert f"Order {order_id} is now cancelled." in response.content.decode()
    call_command("process_todos")
    assert Order.objects.get(order_id=order_id).status == "cancelled"
    item = TodoItem.objects.get(list_name="payments_to_issue", key=order_id)
    assert (item.status, item.closed_by) == ("done", "OrderCancelled")
    assert not Event.objects.filter(type__startswith="Payment").exists()  # never charged


def test_view_only_staff_cannot_run_operator_actions(staff_client, order_id):
    response = staff_client.post(
        reverse("admin:orders_order_changelist"),
        {"action": "cancel", "_selected_action": [order_id]},
        follow=True,
    )
    assert response.status_code == 200
    assert not Event.objects.filter(type="OrderCancelled").exists()
    page = staff_client.get(reverse("admin:todolists_todoitem_changelist")).content.decode()
    assert "retry_now" not in page


def test_the_order_page_tells_the_whole_story(admin_client, order_id):
    page = admin_client.get(reverse("admin:orders_order_change", args=[order_id])).content.decode()
    for event_type in ["OrderPlaced", "PaymentIssued", "OrderConfirmed"]:
        assert event_type in page
    assert "payments_to_issue" in page and "orders_to_confirm" in page


def test_staff_cannot_edit_django_q_schedules_even_with_the_permission(client, django_user_model):
    from django.contrib.auth.models import Permission
    from django_q.models import Schedule

    user = django_user_model.objects.create_user("ops", password="pw-ops-12345", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="django_q"))
    client.force_login(user)
    sweep = Schedule.objects.get(name="todolists.sweep")
    change = reverse("admin:django_q_schedule_change", args=[sweep.pk])
    assert client.post(change, {"name": "x", "func": "os.system"}).status_code == 403
    assert client.get(reverse("admin:django_q_schedule_add")).status_code == 403
    assert Schedule.objects.get(pk=sweep.pk).func == "todolists.tasks.sweep"

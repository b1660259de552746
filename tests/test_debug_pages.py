"""The debug view: dashboard, process map, list and item pages, links, operator actions."""

import datetime
import decimal

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from eventstore.models import Event
from eventstore.projections import projections_catch_up
from orders.models import Order
from payments.commands import Outcome, payment_give_up
from payments.errors import GiveUpRefused, Refusal
from payments.gateway import InProcessGateway
from tests.factories import order_placed
from todolists.lists import TodoList, registry
from todolists.models import TodoItem
from todolists.ui.status import todo_lists_status

pytestmark = pytest.mark.django_db


def stuck_now(wait_until) -> None:
    wait_until(
        lambda: any(s.stuck for s in todo_lists_status()), timeout=10, message="payments_to_issue to be stuck"
    )


def test_the_dashboard_shows_every_list_with_its_numbers_and_marks_the_stuck_one(
    admin_client, seeded_process, wait_until
):
    stuck_now(wait_until)
    page = admin_client.get(reverse("admin:index"))
    assert page.status_code == 200
    rows = {s.name: s for s in page.context["dashboard"].lists}
    assert set(rows) == set(registry.names())  # also the lists with nothing open
    pay = rows["payments_to_issue"]
    assert (pay.open, pay.due, pay.retrying, pay.parked) == (3, 1, 1, 1)
    assert pay.stuck and pay.state == "stuck"
    assert [s.name for s in rows.values() if s.stuck] == ["payments_to_issue"]
    assert (rows["orders_to_confirm"].open, rows["orders_to_confirm"].done_last_hour) == (0, 1)
    assert rows["orders_to_cancel"].done_last_hour == 1
    html = page.content.decode()
    assert "STUCK" in html and "Payments to issue: an item has been due for" in html
    # Each number links to the filtered list behind it.
    assert (
        f"{reverse('admin:todolists_todoitem_changelist')}?list_name=payments_to_issue&amp;state=parked"
        in html
    )
    assert reverse("admin:process_map") in html


def test_a_halted_projection_shows_in_red_with_its_error(
    admin_client, seeded_process, payments_list_breaks_on_cancel
):
    from eventstore.projections import projection_catch_up
    from orders.commands import order_cancel

    order_cancel(order_id=seeded_process["stuck"], reason="changed mind")
    projection_catch_up(name="todo:payments_to_issue")
    page = admin_client.get(reverse("admin:index"))
    [pay] = [s for s in page.context["dashboard"].lists if s.name == "payments_to_issue"]
    assert pay.halted and pay.state == "halted" and "bug in the list projection" in pay.error
    html = page.content.decode()
    assert "HALTED" in html and "projection todo:payments_to_issue is halted at event" in html


def make_items(n: int) -> None:
    """n items spread over the lists and states (read-side rows: the pages only read them)."""
    now = timezone.now()
    names = registry.names()
    statuses = ["open", "parked", "done"]
    start = TodoItem.objects.count()
    TodoItem.objects.bulk_create(
        [
            TodoItem(
                list_name=names[i % len(names)],
                key=f"k{start + i}",
                correlation_id=f"c{start + i}",
                status=statuses[i % 3],
                opened_at=now - datetime.timedelta(seconds=i),
                opened_position=start + i + 1,
                opened_by="OrderPlaced",
                attempts=i % 4,
                last_error="GatewayUnavailable: 503" if i % 4 else "",
                next_attempt_at=now + datetime.timedelta(seconds=i % 7 - 3),
                parked_at=now if i % 3 == 1 else None,
                closed_at=now if i % 3 == 2 else None,
                claimed_by="host:1" if i % 5 == 0 else "",
                claimed_until=now - datetime.timedelta(seconds=5) if i % 5 == 0 else None,
            )
            for i in range(n)
        ]
    )


def count_queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


@pytest.mark.parametrize(
    "page", ["dashboard", "list page", "item page", "process map"], ids=lambda p: p.replace(" ", "_")
)
def test_the_debug_pages_run_a_constant_number_of_queries(admin_client, no_nudge, page):
    order_placed()
    call_command("process_todos")
    make_items(10)
    item = TodoItem.objects.filter(list_name="payments_to_issue").first()
    url = {
        "dashboard": reverse("admin:index"),
        "list page": reverse("admin:todolists_todoitem_changelist")
        + "?list_name=payments_to_issue&state=all",
        "item page": reverse("admin:todolists_todoitem_change", args=[item.pk]),
        "process map": reverse("admin:process_map"),
    }[page]
    count_queries(admin_client, url)  # warm caches (content types, session)
    with_10 = count_queries(admin_client, url)
    make_items(990)
    with_1000 = count_queries(admin_client, url)
    assert with_10 == with_1000, f"{page}: {with_10} queries with 10 items, {with_1000} with 1,000"


@pytest.fixture
def throwaway_list():
    todo = registry.register(
        TodoList(
            name="invoices_to_send",
            title="Invoices to send",
            opened_by=("OrderConfirmed",),
            closed_by=("InvoiceSent",),
            work=lambda item: None,
            key_field="order_id",
            records=("InvoiceSent",),
        )
    )
    yield todo
    registry.unregister(todo.name)


def test_the_process_map_is_drawn_from_the_registries(admin_client, seeded_process, throwaway_list):
    page = admin_client.get(reverse("admin:process_map"))
    html = page.content.decode()
    for todo in registry.all():
        assert f'data-list="{todo.name}"' in html
        for event_type in (*todo.opened_by, *todo.closed_by):
            assert f'data-event="{event_type}"' in html
    steps = {s.name: s for s in page.context["steps"]}
    place = steps["Place order"]
    assert [(e.type, e.opens) for e in place.events] == [("OrderPlaced", ("payments_to_issue",))]
    confirm = {e.type: e for e in steps["Orders to confirm"].events}["OrderConfirmed"]
    assert "invoices_to_send" in confirm.opens  # the new list hangs off the event that opens it
    assert steps["Invoices to send"].works == "invoices_to_send"
    [card] = [c for c in page.context["cards"] if c["todo"].name == "payments_to_issue"]
    assert (card["status"].open, card["status"].parked) == (3, 1)
    assert page.context["unrecorded"] == []
    registry.unregister("invoices_to_send")
    assert (
        'data-list="invoices_to_send"' not in admin_client.get(reverse("admin:process_map")).content.decode()
    )


def changelist(client, **params):
    return client.get(reverse("admin:todolists_todoitem_changelist"), params)


def test_the_list_page_puts_open_items_first_and_done_behind_a_filter(admin_client, seeded_process):
    page = changelist(admin_client, list_name="payments_to_issue")
    keys = [i.key for i in page.context["cl"].result_list]
    assert set(keys) == {seeded_process[k] for k in ("parked", "retrying", "stuck")}
    assert all(i.status != "done" for i in page.context["cl"].result_list)
    everything = [
        i.status
        for i in changelist(admin_client, list_name="payments_to_issue", state="all")
        .context["cl"]
        .result_list
    ]
    assert everything.index("done") > everything.index("parked") and everything[-2:] == ["done", "done"]
    html = page.content.decode()
    assert "PaymentIssued, PaymentFailed, OrderCancelled" in html  # closes on
    assert reverse("admin:orders_order_change", args=[seeded_process["parked"]]) in html
    parked = TodoItem.objects.get(list_name="payments_to_issue", key=seeded_process["parked"])
    row = next(r for r in html.split("<tr") if seeded_process["parked"] in r)
    assert '<td class="field-next_attempt">-</td>' in row
    assert parked.parked_at.strftime("%H:%M:%S") in row
    assert [i.key for i in changelist(admin_client, state="parked").context["cl"].result_list] == [
        seeded_process["parked"]
    ]


def test_the_item_page_says_why_the_item_is_there(admin_client, seeded_process):
    parked = TodoItem.objects.get(list_name="payments_to_issue", key=seeded_process["parked"])
    call_command("process_todos")  # nothing changes for a parked item
    page = admin_client.get(reverse("admin:todolists_todoitem_change", args=[parked.pk]))
    why = page.context["why"]
    assert why.closes_on == ("PaymentIssued", "PaymentFailed", "OrderCancelled")
    assert [a.attempt for a in why.attempts] == [1, 2]
    assert all("injected transient failure" in a.error for a in why.attempts)
    [park] = why.actions
    assert (park.what, park.actor) == ("parked", "automation") and "gave up after 2 attempts" in park.reason
    html = page.content.decode()
    assert reverse("admin:eventstore_event_change", args=[parked.opened_position]) in html
    assert reverse("admin:orders_order_change", args=[seeded_process["parked"]]) in html
    assert html.count("injected transient failure") >= 2


def test_an_event_page_links_to_the_story_and_the_items_it_opened_and_closed(admin_client, seeded_process):
    issued = Event.objects.get(type="PaymentIssued", correlation_id=seeded_process["confirmed"])
    page = admin_client.get(reverse("admin:eventstore_event_change", args=[issued.pk]))
    assert [i.list_name for i in page.context["opened_items"]] == ["orders_to_confirm"]
    assert [i.list_name for i in page.context["closed_items"]] == ["payments_to_issue"]
    html = page.content.decode()
    assert reverse("admin:orders_order_change", args=[seeded_process["confirmed"]]) in html
    for item in [*page.context["opened_items"], *page.context["closed_items"]]:
        assert reverse("admin:todolists_todoitem_change", args=[item.pk]) in html


def post_action(client, admin_url: str, action: str, pks, query: str = "") -> str:
    response = client.post(
        reverse(admin_url) + query, {"action": action, "_selected_action": pks}, follow=True
    )
    assert response.status_code == 200
    return response.content.decode()


def test_retry_shows_its_effect_at_once_without_a_cluster(admin_client, seeded_process):
    parked = TodoItem.objects.get(list_name="payments_to_issue", key=seeded_process["parked"])
    html = post_action(admin_client, "admin:todolists_todoitem_changelist", "retry_now", [parked.pk])
    assert f"Item {parked.key} on payments_to_issue is now open and due now" in html
    parked.refresh_from_db()
    assert (parked.status, parked.attempts) == ("open", 0)


def test_park_shows_its_effect_and_a_refusal_says_why_without_a_success_message(admin_client, seeded_process):
    stuck = TodoItem.objects.get(list_name="payments_to_issue", key=seeded_process["stuck"])
    html = post_action(admin_client, "admin:todolists_todoitem_changelist", "park", [stuck.pk])
    assert "is now parked: no further attempts until someone retries it" in html
    done = TodoItem.objects.get(list_name="orders_to_confirm", key=seeded_process["confirmed"])
    html = post_action(
        admin_client, "admin:todolists_todoitem_changelist", "retry_now", [done.pk], "?state=all"
    )
    assert "Refused:" in html and "is done; there is nothing to retry" in html
    assert "is now" not in html and 'class="success"' not in html


def test_cancel_shows_the_order_cancelled_and_a_refusal_points_to_give_up(admin_client, seeded_process):
    order_id = order_placed()
    projections_catch_up()  # the order shows in the admin; nobody has worked the lists yet
    html = post_action(admin_client, "admin:orders_order_changelist", "cancel", [order_id])
    assert f"Order {order_id} is now cancelled." in html
    assert TodoItem.objects.get(list_name="payments_to_issue", key=order_id).status == "done"
    html = post_action(admin_client, "admin:orders_order_changelist", "cancel", [seeded_process["parked"]])
    assert "payment is in progress" in html and "give it up" in html and 'class="success"' not in html


def park_for_give_up(settings, *, charge_first: bool) -> str:
    """A parked payment. With `charge_first` the gateway took the money but the outcome was never
    recorded (the worker died after the charge): the case give-up must not forget."""
    settings.TODO_MAX_ATTEMPTS = 1
    order_id = order_placed()
    if charge_first:
        from payments.commands import payment_idempotency_key

        InProcessGateway().charge(
            idempotency_key=payment_idempotency_key(order_id),
            order_id=order_id,
            amount=decimal.Decimal("10.00"),
            currency="EUR",
            payment_method="pm_card_visa",
        )
    settings.INPROCESS_GATEWAY_FAILURE_RATE = 1.0
    call_command("process_todos")
    settings.INPROCESS_GATEWAY_FAILURE_RATE = 0.0
    assert TodoItem.objects.get(list_name="payments_to_issue", key=order_id).status == "parked"
    return order_id


def test_give_up_with_no_charge_records_the_failure_and_the_order_is_cancelled(no_nudge, settings):
    order_id = park_for_give_up(settings, charge_first=False)
    assert payment_give_up(order_id=order_id, actor="ops", gateway=InProcessGateway()) == Outcome.FAILED
    failed = Event.objects.get(type="PaymentFailed", correlation_id=order_id)
    assert failed.data["decline_code"] == "given_up" and failed.actor == "ops"
    call_command("process_todos")
    assert Order.objects.get(order_id=order_id).status == "cancelled"
    assert not Event.objects.filter(type="PaymentIssued", correlation_id=order_id).exists()
    with pytest.raises(GiveUpRefused) as refused:
        payment_give_up(order_id=order_id, actor="ops", gateway=InProcessGateway())
    assert refused.value.code == Refusal.NOT_PARKED


def test_give_up_after_a_charge_records_the_success_and_the_order_is_confirmed(no_nudge, settings):
    order_id = park_for_give_up(settings, charge_first=True)
    assert payment_give_up(order_id=order_id, actor="ops", gateway=InProcessGateway()) == Outcome.ISSUED
    assert not Event.objects.filter(type="PaymentFailed", correlation_id=order_id).exists()
    call_command("process_todos")
    assert Order.objects.get(order_id=order_id).status == "confirmed"


def test_give_up_refuses_an_item_that_is_not_parked_and_a_busy_gateway(no_nudge, settings):
    order_id = order_placed()
    call_command("process_todos")
    with pytest.raises(GiveUpRefused) as refused:
        payment_give_up(order_id=order_id, actor="ops", gateway=InProcessGateway())
    assert refused.value.code == Refusal.NOT_PARKED
    parked = park_for_give_up(settings, charge_first=False)

    class LaggingGateway(InProcessGateway):
        find_charge_lag = datetime.timedelta(minutes=3)

    with pytest.raises(GiveUpRefused) as refused:
        payment_give_up(order_id=parked, actor="ops", gateway=LaggingGateway())
    assert refused.value.code == Refusal.TOO_RECENT
    assert not Event.objects.filter(type="PaymentFailed", correlation_id=parked).exists()


def test_the_give_up_action_in_the_admin(admin_client, no_nudge, settings):
    order_id = park_for_give_up(settings, charge_first=False)
    html = post_action(admin_client, "admin:payments_payment_changelist", "give_up", [order_id])
    assert f"Payment of order {order_id}: no charge under its key" in html
    assert TodoItem.objects.get(list_name="orders_to_cancel", key=order_id).status == "open"


def test_an_expired_lease_shows_who_held_it_and_links_to_the_item(admin_client, seeded_process):
    # A worker that died mid-item leaves its claim behind until the lease runs out.
    stuck = TodoItem.objects.get(list_name="payments_to_issue", key=seeded_process["stuck"])
    TodoItem.objects.filter(pk=stuck.pk).update(
        claimed_by="host-a:4242", claimed_until=timezone.now() - datetime.timedelta(minutes=1)
    )
    page = admin_client.get(reverse("admin:index"))
    dash = page.context["dashboard"]
    assert dash.expired_lease_count == 1 and [i.claimed_by for i in dash.expired_leases] == ["host-a:4242"]
    html = page.content.decode()
    assert "host-a:4242" in html and reverse("admin:todolists_todoitem_change", args=[stuck.pk]) in html
    expired = changelist(admin_client, lease="expired").context["cl"].result_list
    assert [i.key for i in expired] == [stuck.key]


def test_done_in_the_last_hour_links_to_exactly_those_items(admin_client, seeded_process):
    page = changelist(admin_client, list_name="payments_to_issue", state="done_last_hour")
    keys = {i.key for i in page.context["cl"].result_list}
    assert keys == {seeded_process["confirmed"], seeded_process["cancelled"]}


def test_give_up_loses_to_an_outcome_a_worker_records_meanwhile(no_nudge, settings):
    """A worker's charge lands while the operator gives up: its PaymentIssued wins, and give-up
    records nothing, so the order is confirmed and the money is never forgotten."""
    from eventstore.store import event_append
    from payments.commands import payment_stream
    from payments.events import PaymentIssued

    order_id = park_for_give_up(settings, charge_first=False)

    class RacingGateway(InProcessGateway):
        def find_charge(self, *, idempotency_key):
            event_append(
                stream_id=payment_stream(order_id),
                events=[
                    PaymentIssued(
                        order_id=order_id,
                        payment_id="pi_late",
                        amount=decimal.Decimal("1.00"),
                        currency="EUR",
                    )
                ],
                expected_version=None,
                correlation_id=order_id,
                actor="automation",
            )
            return None  # what the gateway said a moment before the charge landed

    with pytest.raises(GiveUpRefused) as refused:
        payment_give_up(order_id=order_id, actor="ops", gateway=RacingGateway())
    assert refused.value.code == Refusal.CHANGED
    assert not Event.objects.filter(type="PaymentFailed", correlation_id=order_id).exists()
    call_command("process_todos")
    assert Order.objects.get(order_id=order_id).status == "confirmed"


def test_give_up_refuses_when_an_operator_retried_meanwhile(no_nudge, settings):
    """A retry while giving up means a worker may be charging right now: give-up records nothing
    (both take the order's lock, so the guard sees the retry)."""
    from todolists.operator import todo_item_retry

    order_id = park_for_give_up(settings, charge_first=False)

    class RetriedMeanwhile(InProcessGateway):
        def find_charge(self, *, idempotency_key):
            item = TodoItem.objects.get(list_name="payments_to_issue", key=order_id)
            todo_item_retry(item=item, actor="another operator")
            return None  # no charge yet: the retried worker has not charged

    with pytest.raises(GiveUpRefused) as refused:
        payment_give_up(order_id=order_id, actor="ops", gateway=RetriedMeanwhile())
    assert refused.value.code == Refusal.RETRIED
    assert not Event.objects.filter(type="PaymentFailed", correlation_id=order_id).exists()
    call_command("process_todos")
    assert Order.objects.get(order_id=order_id).status == "confirmed"

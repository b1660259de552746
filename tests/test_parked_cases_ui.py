"""A parked business case as the operator meets it: one verdict finding (health, todo_status,
/metrics read it), the dashboard's parked cases with Retry and Skip (plain forms), and the event
and order pages saying the case is parked."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from eventstore.models import Event, ParkedEvent
from orders.commands import order_place
from tests.factories import PARKS_ON_ORDER_PLACED, poison_order_placed
from todolists.ui.status import todo_lists_status
from todolists.ui.verdict import Level, process_verdict

pytestmark = pytest.mark.django_db


@pytest.fixture
def parked(no_nudge):
    poison = poison_order_placed()
    fine = order_place(amount="10.00", currency="EUR")
    call_command("process_todos")
    return poison, fine


def test_a_parked_case_is_one_attention_finding_read_by_health_status_and_metrics(
    client, parked, settings, capsys
):
    poison, _ = parked
    verdict = process_verdict()
    # The case is parked in three projections: one finding names them all, and counts for each.
    [finding] = verdict.findings
    assert finding.level == Level.ATTENTION
    sentence = finding.sentence()
    assert sentence.startswith(
        "1 business case(s) parked in orders, payments and todo:payments_to_issue since "
    )
    assert f"event #{poison.position} (OrderPlaced): InvalidEvent" in sentence
    assert f"parked_case_retry {poison.correlation_id}" in sentence and "skip" in sentence
    subjects = [f"projection:{name}" for name in PARKS_ON_ORDER_PLACED]
    assert finding.subjects == tuple(subjects)
    for subject in subjects:
        assert verdict.findings_of(subject) == [finding] and verdict.level_of(subject) == Level.ATTENTION
    assert {r.status.name: r.level for r in verdict.projection_rows if r.status.parked} == dict.fromkeys(
        PARKS_ON_ORDER_PLACED, Level.ATTENTION
    )
    [row] = [r for r in verdict.list_rows if r["status"].name == "payments_to_issue"]
    assert row["findings"] == [finding]
    assert verdict.list_state("payments_to_issue") == ("attention", "ATTENTION")

    body = client.get(reverse("health_process")).json()  # attention: 200, the reason named once
    assert body["status"] == "attention" and body["reasons"] == [sentence]
    assert body["findings"][0]["subjects"] == subjects
    assert body["projections"]["orders"]["parked"] == 1
    assert body["parked_cases"][0]["correlation_id"] == poison.correlation_id
    with pytest.raises(CommandError, match="parked in orders, payments and todo:payments_to_issue") as check:
        call_command("todo_status", "--check")
    assert check.value.returncode == 1 and str(check.value).count("business case(s) parked") == 1
    settings.DEBUG = True
    metrics = client.get(reverse("metrics")).content.decode()
    assert 'projection_parked_cases{projection="orders"} 1.0' in metrics
    for name in PARKS_ON_ORDER_PLACED:
        assert f'projection_level{{projection="{name}"}} 1.0' in metrics
    assert (
        'projection_parked_cases{projection="orders_to_confirm"} 0.0' not in metrics
    )  # lists have their own name
    assert 'projection_halted{projection="orders"} 0.0' in metrics


def test_cases_parked_in_the_same_projections_are_one_finding_and_another_set_is_another(
    no_nudge, projection_broken_for
):
    first, second = poison_order_placed(), poison_order_placed()
    order_id = order_place(amount="10.00", currency="EUR")
    # A bug in one projection parks a third case there alone.
    projection_broken_for("payments", order_id, event_type="PaymentStarted")
    call_command("process_todos")
    verdict = process_verdict()
    by_cause = {f.cause: f for f in verdict.findings if "parked in" in f.cause}
    assert set(by_cause) == {
        "2 business case(s) parked in orders, payments and todo:payments_to_issue",
        "1 business case(s) parked in payments",
    }
    both = by_cause["2 business case(s) parked in orders, payments and todo:payments_to_issue"]
    assert f"event #{first.position} (OrderPlaced)" in both.next_step  # the oldest case names the step
    assert f"parked_case_retry {first.correlation_id}" in both.next_step
    alone = by_cause["1 business case(s) parked in payments"]
    assert "bug in the payments read model" in alone.next_step and alone.subjects == ("projection:payments",)
    assert verdict.findings_of("projection:payments") == [both, alone]
    assert verdict.findings_of("projection:orders") == [both]
    assert second.correlation_id not in " ".join(verdict.reasons)


def test_the_dashboard_lists_the_case_and_skips_it_with_a_reason(admin_client, parked):
    poison, _ = parked
    html = admin_client.get(reverse("admin:index")).content.decode()
    assert 'id="parked-cases"' in html and f'data-case="{poison.correlation_id}"' in html
    assert reverse("admin:eventstore_event_change", args=[poison.position]) in html
    assert "orders<br>payments<br>todo:payments_to_issue" in html and "1 PARKED" in html

    shown = {"case": poison.correlation_id, "position": poison.position}
    refused = admin_client.post(reverse("admin:parked_case_skip"), shown, follow=True)
    assert "Refused: a reason is required" in refused.content.decode()
    stale = {**shown, "position": poison.position + 1, "reason": "r"}  # a page showing another event
    refused = admin_client.post(reverse("admin:parked_case_skip"), stale, follow=True).content.decode()
    assert f"is parked on event #{poison.position} now, not #{poison.position + 1}" in refused
    retried = admin_client.post(
        reverse("admin:parked_case_retry"), {"case": poison.correlation_id}, follow=True
    )
    assert f"case {poison.correlation_id} is still parked in orders: InvalidEvent" in retried.content.decode()

    done = admin_client.post(
        reverse("admin:parked_case_skip"),
        {**shown, "reason": "bad import"},
        follow=True,
    ).content.decode()
    assert f"Case {poison.correlation_id} skipped its parked event in orders" in done
    assert not ParkedEvent.objects.exists() and 'id="parked-cases"' not in done
    [skip] = Event.objects.filter(type="ParkedEventSkipped")
    assert (skip.actor, skip.correlation_id) == ("admin", poison.correlation_id)


def test_a_skip_needs_a_superuser_and_a_retry_the_operate_permission(client, django_user_model, parked):
    poison, _ = parked
    staff = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    client.force_login(staff)
    for url, data in [
        (reverse("admin:parked_case_retry"), {"case": poison.correlation_id}),
        (
            reverse("admin:parked_case_skip"),
            {"case": poison.correlation_id, "position": poison.position, "reason": "r"},
        ),
    ]:
        page = client.post(url, data, follow=True).content.decode()
        assert "Refused:" in page
    assert ParkedEvent.objects.filter(correlation_id=poison.correlation_id).count() == 3
    assert not Event.objects.filter(type="ParkedEventSkipped").exists()


def test_the_event_page_and_the_orders_page_say_the_case_is_parked(
    admin_client, no_nudge, projection_broken_for
):
    order_id = order_place(amount="10.00", currency="EUR")
    projection_broken_for("payments", order_id, event_type="PaymentStarted")
    call_command("process_todos")
    row = ParkedEvent.objects.filter(projection="payments").exclude(error="").get()
    event_page = admin_client.get(
        reverse("admin:eventstore_event_change", args=[row.position])
    ).content.decode()
    assert 'id="parked-here"' in event_page and "This event parked its business case" in event_page
    assert "bug in the payments read model" in event_page
    order_page = admin_client.get(reverse("admin:orders_order_change", args=[order_id])).content.decode()
    assert 'id="case-parked"' in order_page and "This business case is parked" in order_page
    assert f"event #{row.position}" in order_page


def test_an_item_of_a_case_parked_elsewhere_waits_unworked_and_does_not_make_its_list_stuck(
    no_nudge, projection_broken_for
):
    from payments.models import InProcessCharge

    order_id = order_place(amount="10.00", currency="EUR")
    projection_broken_for("orders", order_id)
    call_command("process_todos")
    assert ParkedEvent.objects.filter(projection="orders", correlation_id=order_id).exists()
    assert not InProcessCharge.objects.filter(order_id=order_id).exists()  # its payment item is never worked
    [pay] = [s for s in todo_lists_status() if s.name == "payments_to_issue"]
    assert pay.due == 1 and pay.oldest_due_age_seconds is None  # it waits for the operator, not a worker


def test_a_list_page_says_its_projection_parked_cases_whose_items_it_cannot_show(admin_client, parked):
    page = admin_client.get(
        reverse("admin:todolists_todoitem_changelist"), {"list_name": "payments_to_issue"}
    ).content.decode()
    assert "The todo:payments_to_issue projection has parked 1 business case" in page
    assert reverse("admin:index") + "#parked-cases" in page

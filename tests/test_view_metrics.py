"""Latency histograms in /metrics, and the README's alert rule and Grafana panels against the
real exposition, parsed by prometheus_client's own text parser."""

import re
from pathlib import Path

import pytest
from django.urls import reverse
from prometheus_client.parser import text_string_to_metric_families

from eventstore.projections import projections_catch_up

pytestmark = pytest.mark.django_db(transaction=True)  # the runner commits as the cluster does

README = Path(__file__).resolve().parent.parent / "README.md"


def scrape(client, settings) -> dict:
    settings.METRICS_TOKEN = "t0ken-for-tests"
    text = client.get(
        reverse("metrics"), headers={"authorization": "Bearer t0ken-for-tests"}
    ).content.decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_wait_and_close_histograms_per_list(client, settings, place_orders):
    from django.core.management import call_command

    place_orders(3, 1)
    call_command("process_todos")
    projections_catch_up()
    families = scrape(client, settings)
    for name in ("todo_item_wait_seconds", "todo_item_close_seconds"):
        family = families[name]
        assert family.type == "histogram"
        samples = [s for s in family.samples if s.labels.get("list") == "payments_to_issue"]
        buckets = [s.value for s in samples if s.name.endswith("_bucket")]
        count = next(s.value for s in samples if s.name.endswith("_count"))
        assert buckets == sorted(buckets) and buckets[-1] == count == 4  # cumulative, +Inf is the count
        assert next(s.value for s in samples if s.name.endswith("_sum")) >= 0
    closed = {
        s.labels["list"]: s.value
        for s in families["todo_item_close_seconds"].samples
        if s.name.endswith("_count")
    }
    assert closed == {"payments_to_issue": 4, "orders_to_confirm": 3, "orders_to_cancel": 1}


def _readme_section() -> str:
    text = README.read_text()
    start = text.index("**Latency in `/metrics`**")
    return text[start : text.index("tests/test_view_metrics.py", start)]


def test_the_readme_alert_rule_and_panels_name_metrics_the_exposition_has(client, settings, place_orders):
    from django.core.management import call_command

    place_orders(3, 1)
    call_command("process_todos")
    projections_catch_up()
    families = scrape(client, settings)
    samples = {s.name for f in families.values() for s in f.samples}
    section = _readme_section()
    named = set(re.findall(r"\b((?:todo|projection)_[a-z_]+)\b", section))
    named -= {"todo_lists"}  # the rule group's name
    assert {"todo_item_close_seconds_bucket", "todo_item_wait_seconds_bucket", "todo_list_parked"} <= named
    exposed = samples | set(families)  # sample names, and the families (histogram base names)
    assert named <= exposed, f"named in the README but not exposed: {sorted(named - exposed)}"
    # Label names used in the queries exist on those samples.
    labels = {k for f in families.values() for s in f.samples for k in s.labels}
    assert {"list", "le", "type", "projection"} <= labels

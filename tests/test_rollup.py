"""The lists' rollup (todolists/rollup.py): what the charts read instead of the log, written by the
lists' own projections, rebuilt by a replay, and balanced so that the levels folded back from now
start at zero before anything happened."""

import datetime

import pytest
from django.core.management import call_command
from django.db.models import F
from django.template.loader import render_to_string
from django.utils import timezone

from eventstore.projections import projections_catch_up
from todolists.models import TodoItem, TodoListRollup
from todolists.operator import todo_item_retry
from todolists.ui.charts import ListCharts, list_charts
from todolists.ui.status import todo_lists_status

pytestmark = pytest.mark.django_db

PAY = "payments_to_issue"


def charts_of(
    name: str, *, window: str = "hour", ahead_minutes: int = 3
) -> dict[str, dict[str, list[float]]]:
    """Each chart's series of one list, with the window ending a few buckets after now, so the
    test's events sit inside it whichever minute they fell in."""
    now = timezone.now() + datetime.timedelta(minutes=ahead_minutes)
    [lc] = list_charts(window=window, lists=todo_lists_status(), now=now, list_names=[name])
    return {c.id.removeprefix(f"{name}-"): {s.name: list(s.values) for s in c.series} for c in lc.charts}


def rollup_rows() -> list[tuple]:
    return sorted(TodoListRollup.objects.values_list("list_name", "period", "at", "measure", "n"))


def assert_balanced() -> None:
    """Every list's counts over all time add up to its levels now: each item that entered a state
    (open, parked, in a backoff) was counted, and so was each one that left it."""
    now = timezone.now()

    def total(name: str, measure: str, **lookups) -> int:
        rows = TodoListRollup.objects.filter(list_name=name, period="m", measure=measure, **lookups)
        return sum(rows.values_list("n", flat=True))

    for s in todo_lists_status():
        assert total(s.name, "opened") - total(s.name, "closed") == s.open
        assert total(s.name, "parked_in") - total(s.name, "parked_out") == s.parked
        # A backoff's end is counted at its retry_at: those still ahead are the items retrying now.
        assert total(s.name, "backoff_in") - total(s.name, "backoff_out", at__lte=now) == s.retrying
        # The all-time totals are the minutes' sums, and the done count read from them is exact.
        for measure in ("opened", "closed", "reopened", "failed", "parked_in", "backoff_in"):
            all_time = TodoListRollup.objects.filter(list_name=s.name, period="t", measure=measure)
            assert sum(all_time.values_list("n", flat=True)) == total(s.name, measure)
        assert s.done == TodoItem.objects.filter(list_name=s.name, status="done").count()


def test_the_rollup_counts_what_happened_and_the_levels_fold_back_to_zero(seeded_process):
    # Seeded on payments_to_issue: 5 opened, 2 closed, 3 failed attempts, 1 parked, 1 retrying
    # (backoff of an hour), 1 due. Then the parked and the retrying ones are retried: due 3.
    assert_balanced()
    for which in ("parked", "retrying"):
        item = TodoItem.objects.get(list_name=PAY, key=seeded_process[which])
        todo_item_retry(item=item, actor="ops", reason="gateway back")
    projections_catch_up()
    assert_balanced()
    for window in ("hour", "day"):
        c = charts_of(PAY, window=window)
        if window == "hour":  # per minute (the day's are per minute too, averaged over each hour)
            assert (sum(c["throughput"]["opened"]), sum(c["throughput"]["closed"])) == (5, 2)
        backlog = c["backlog"]
        assert (backlog["open"][-1], backlog["due"][-1], backlog["parked"][-1]) == (3, 3, 0)
        # Before the first event every level is zero: every change was counted both ways.
        assert (backlog["open"][0], backlog["due"][0], backlog["parked"][0]) == (0, 0, 0)
    minutes = TodoListRollup.objects.filter(list_name=PAY, period="m")
    counted = {
        m: sum(minutes.filter(measure=m).values_list("n", flat=True))
        for m in ("failed", "parked_in", "parked_out")
    }
    assert counted == {"failed": 3, "parked_in": 1, "parked_out": 1}
    [lc] = list_charts(window="hour", lists=todo_lists_status(), list_names=[PAY])
    assert lc.latency.close_p50 is not None and 0 <= lc.latency.close_p50 <= lc.latency.close_p95 <= 10
    assert lc.latency.wait_p50 is not None


def test_the_legends_say_what_the_whole_window_shows_not_its_last_minute(seeded_process):
    # Seeded on payments_to_issue: 5 opened, 2 closed, 3 failed attempts; open 3: 1 parked, 1
    # retrying, 1 due. The window ends minutes after the burst: its last bucket is empty, as the
    # current minute is a while after a spike, and the legends still tell the burst.
    def charts_at(window: str, ahead: datetime.timedelta) -> ListCharts:
        now = timezone.now() + ahead
        [lc] = list_charts(window=window, lists=todo_lists_status(), now=now, list_names=[PAY])
        return lc

    def legends(lc: ListCharts) -> dict[str, tuple]:
        return {
            c.id.removeprefix(f"{PAY}-"): (c.legend, {s.name: (s.shown, s.note) for s in c.series})
            for c in lc.charts
        }

    def drawn(lc: ListCharts) -> str:
        return render_to_string("admin/todolists/view/charts.html", {"charts": [lc], "window": lc.window})

    minutes_later, hours_later = datetime.timedelta(minutes=3), datetime.timedelta(hours=2)
    backlog = ("now", {"open": (3, ""), "due": (1, ""), "parked": (1, "")})
    for window in ("hour", "day"):
        assert legends(charts_at(window, minutes_later)) == {
            "backlog": backlog,
            "throughput": (f"in the last {window}", {"opened": (5, ""), "closed": (2, "")}),
            "failures": (f"in the last {window}", {"failed attempts": (60.0, "3 of 5")}),
        }
    html = drawn(charts_at("hour", minutes_later))
    assert 'opened <b>5</b></span> <span class="legend-closed">closed <b>2</b>' in html
    assert "failed attempts <b>60%</b> (3 of 5)" in html and "open <b>3</b>" in html
    assert html.count('<span class="muted legend-when">in the last hour</span>') == 2
    assert "<title>opened: 5 in the last hour, peak" in html

    # Past the window, the counts are gone from it; the levels are still what they are now.
    later = charts_at("hour", hours_later)
    assert legends(later) == {
        "backlog": backlog,
        "throughput": ("in the last hour", {"opened": (0, ""), "closed": (0, "")}),
        "failures": ("in the last hour", {"failed attempts": (None, "no attempts")}),
    }
    assert '<span class="legend-failed">no attempts</span> <span class="muted legend-when">' in drawn(later)


def test_a_replay_rebuilds_the_rollup_as_the_projections_wrote_it(seeded_process):
    live = rollup_rows()
    assert {r[0] for r in live} == {PAY, "orders_to_confirm", "orders_to_cancel"}
    # One bucket off by one: only a rebuild that is swapped in puts it back (a replay that left
    # the live rollup alone would otherwise pass).
    bucket = TodoListRollup.objects.filter(list_name=PAY, period="m", measure="opened").first()
    TodoListRollup.objects.filter(pk=bucket.pk).update(n=F("n") + 1)
    assert rollup_rows() != live
    call_command("replay_projections")
    assert rollup_rows() == live

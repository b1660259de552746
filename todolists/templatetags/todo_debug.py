"""Small formatting filters for the debug pages: one way to show a time, one way to show an age."""

import datetime
from typing import Any

from django import template
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.safestring import mark_safe

register = template.Library()

TIME_FORMAT = "%Y-%m-%d %H:%M:%S %Z"


@register.filter
def duration(seconds: float | datetime.timedelta | None) -> str:
    """4 s, 3 m 12 s, 2 h 5 m, 3 d 4 h: an age an operator reads at a glance."""
    if seconds is None or seconds == "":
        return "-"
    if isinstance(seconds, datetime.timedelta):
        seconds = seconds.total_seconds()
    s = int(seconds)
    for unit, size, sub, sub_size in (("d", 86400, "h", 3600), ("h", 3600, "m", 60), ("m", 60, "s", 1)):
        if s >= size:
            return f"{s // size} {unit} {s % size // sub_size} {sub}"
    return f"{s} s"


def absolute(value: datetime.datetime) -> str:
    """The one absolute format of the debug pages: to the second, with the zone."""
    return timezone.localtime(value).strftime(TIME_FORMAT)


def relative(value: datetime.datetime, now: datetime.datetime | None = None) -> str:
    delta = (now or timezone.now()) - value
    if abs(delta.total_seconds()) < 1:
        return "now"
    return f"{duration(delta)} ago" if delta.total_seconds() > 0 else f"in {duration(-delta)}"


@register.filter
def when(value: datetime.datetime | None) -> str:
    """A time as every debug page shows it: absolute with the zone, then its age
    ("2026-11-30 03:50:52 UTC, 3 m 12 s ago"), in a <time> element a browser can read."""
    if not value:
        return ""
    html = render_to_string(
        "admin/todolists/when.html",
        {"iso": value.isoformat(), "absolute": absolute(value), "relative": relative(value)},
    )
    return mark_safe(html.strip())  # the template escaped every value


@register.inclusion_tag("admin/todolists/hidden_rows.html")
def hidden_rows(projection: str, rows: str) -> dict[str, Any]:
    """`{% hidden_rows "orders" "orders placed" %}`: a banner when the page's projection is halted
    or behind the log; nothing when it is caught up."""
    from todolists.ui.hidden_rows import projections_notices

    return {"notices": projections_notices(names=[projection], rows=rows)}


@register.inclusion_tag("admin/todolists/hidden_rows.html")
def list_hidden_rows(list_name: str | None) -> dict[str, Any]:
    """The banner of the item list page: the filtered list's projection, or every list's."""
    from todolists.ui.hidden_rows import list_projection_names, projections_notices

    return {"notices": projections_notices(names=list_projection_names(list_name), rows="items opened")}

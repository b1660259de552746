"""Small formatting filters for the debug pages."""

import datetime

from django import template

register = template.Library()


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

"""The pages of issue 14 in the debug admin: the process picture, the live fragment, the search
box and a past moment. Thin: each builds its context from a domain function and renders a
template; the admin site (todolists/ui/site.py) wires them under its login."""

from __future__ import annotations

import datetime
from typing import Any
from urllib.parse import urlencode

from django.contrib.admin import AdminSite
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse

from todolists.lists import registry as todo_lists
from todolists.process import process_steps, unrecorded_event_types
from todolists.ui.as_of import NoSuchMoment, position_at, todo_lists_as_of
from todolists.ui.charts import window_of
from todolists.ui.live import live_snapshot, refresh_every_ms
from todolists.ui.process_map import ProcessMap, process_map
from todolists.ui.search import PrefixTooShort, search_prefix
from todolists.ui.verdict import Verdict


def _changelist(name: str, **params: str) -> str:
    return f"{reverse(f'admin:{name}_changelist')}?{urlencode(params)}"


def process_map_for(verdict: Verdict) -> ProcessMap:
    return process_map(
        lists=verdict.lists,
        verdict=verdict,
        urls={
            "list": lambda name: _changelist("todolists_todoitem", list_name=name),
            "event": lambda type_: _changelist("eventstore_event", type__exact=type_),
            "step": lambda types: _changelist("eventstore_event", type__in=types),
        },
    )


def live_context(request: HttpRequest, *, regions: str = "todo-dashboard") -> dict[str, Any]:
    """The cached snapshot of this interval, and what the live refresh needs."""
    window = window_of(request.GET.get("window"))
    snap = live_snapshot(window=window)
    return {
        "dashboard": snap.dashboard,
        "charts": snap.charts,
        "window": window,
        "computed_at": datetime.datetime.fromtimestamp(snap.computed_at, tz=datetime.UTC),
        "refresh_ms": refresh_every_ms(),
        "refresh_seconds": round(refresh_every_ms() / 1000),
        "live_paused": request.GET.get("live") == "off",
        "live_regions": regions,
    }


def process_map_view(site: AdminSite, request: HttpRequest) -> TemplateResponse:
    live = live_context(request, regions="process-picture")
    lists = live["dashboard"].lists
    cards = [{"todo": t, "status": s} for t, s in zip(todo_lists.all(), lists, strict=True)]
    context = {
        **site.each_context(request),
        **live,
        "title": "Process map",
        "map": process_map_for(live["dashboard"]),
        "steps": process_steps(),
        "cards": cards,
        "unrecorded": unrecorded_event_types(),
    }
    return TemplateResponse(request, "admin/todolists/process_map.html", context)


def search_view(site: AdminSite, request: HttpRequest) -> TemplateResponse:
    q = request.GET.get("q", "").strip()
    hits, error, status = [], "", 200
    if q:
        try:
            hits = search_prefix(q=q)
        except PrefixTooShort as exc:
            error, status = f"Search: {exc}.", 400
    context = {
        **site.each_context(request),
        "title": "Find an id",
        "search_q": q,
        "hits": hits,
        "error": error,
    }
    return TemplateResponse(request, "admin/todolists/view/search.html", context, status=status)


def as_of_view(site: AdminSite, request: HttpRequest) -> TemplateResponse:
    at = request.GET.get("at", "").strip()
    context = {**site.each_context(request), "title": "A past moment", "as_of_at": at}
    status = 200
    if at:
        try:
            position = position_at(at)
            context |= {"position": position, "lists": todo_lists_as_of(position=position)}
            context["at_time"] = "" if at.isdigit() else at
        except NoSuchMoment as exc:
            context["error"], status = f"{exc}.", 400
    return TemplateResponse(request, "admin/todolists/view/as_of.html", context, status=status)


def view_urls(site: AdminSite) -> list[URLPattern]:
    """The URLs of these pages, each behind the admin's login (site.admin_view)."""
    return [
        path("process-map/", site.admin_view(lambda r: process_map_view(site, r)), name="process_map"),
        path("search/", site.admin_view(lambda r: search_view(site, r)), name="todo_search"),
        path("as-of/", site.admin_view(lambda r: as_of_view(site, r)), name="todo_as_of"),
    ]

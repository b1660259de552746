"""The admin site whose index is the debug dashboard, plus the process map.

A subclass of AdminSite (wired in config/apps.py) rather than only an overridden admin/index.html:
the index needs numbers from domain functions in its context, and AdminSite.index() is the hook
Django gives for that; the template only lays them out.
"""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import URLPattern, URLResolver, path

from todolists.ui import dashboard_actions, parked_actions
from todolists.ui.error_groups import group_actions
from todolists.ui.glossary import glossary_context
from todolists.ui.views import live_context, view_urls


class DebugAdminSite(admin.AdminSite):
    site_header = "TODO lists: debug"
    site_title = "TODO lists"
    index_template = "admin/todolists/dashboard.html"
    # The item list needs the width at 1280 px; the dashboard links to every page anyway.
    enable_nav_sidebar = False
    # No public site behind the admin: "View site" would be a 404, so the admin shows none.
    site_url = None

    def each_context(self, request: HttpRequest) -> dict[str, Any]:
        return {**super().each_context(request), **glossary_context()}

    def index(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> TemplateResponse:
        live = live_context(request)  # the verdict of this interval, computed once for every viewer
        rows = [
            {**row, "actions": group_actions(list_name=row["status"].name)}
            for row in live["dashboard"].list_rows
        ]
        context = {"title": "Dashboard", **live, "list_rows": rows, **(extra_context or {})}
        return super().index(request, context)

    def get_urls(self) -> list[URLResolver | URLPattern]:
        return [
            *view_urls(self),
            path(
                "error-group-action/",
                self.admin_view(dashboard_actions.error_group_action_view),
                name="todo_error_group_action",
            ),
            path("list-pause/", self.admin_view(dashboard_actions.list_pause_view), name="todo_list_pause"),
            path("event-skip/", self.admin_view(dashboard_actions.event_skip_view), name="event_skip"),
            path(
                "parked-retry/",
                self.admin_view(parked_actions.parked_case_retry_view),
                name="parked_case_retry",
            ),
            path(
                "parked-skip/", self.admin_view(parked_actions.parked_case_skip_view), name="parked_case_skip"
            ),
            *super().get_urls(),
        ]

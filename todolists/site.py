"""The admin site whose index is the debug dashboard, plus the process map.

A subclass of AdminSite (wired in config/apps.py) rather than only an overridden admin/index.html:
the index needs numbers from domain functions in its context, and AdminSite.index() is the hook
Django gives for that; the template only lays them out.
"""

from django.contrib import admin

from todolists.views import live_context, view_urls


class DebugAdminSite(admin.AdminSite):
    site_header = "TODO lists: debug"
    site_title = "TODO lists"
    index_template = "admin/todolists/dashboard.html"
    # The item list needs the width at 1280 px; the dashboard links to every page anyway.
    enable_nav_sidebar = False

    def index(self, request, extra_context=None):
        context = {"title": "Dashboard", **live_context(request), **(extra_context or {})}
        return super().index(request, context)

    def get_urls(self):
        return [
            *view_urls(self),
            *super().get_urls(),
        ]

from django.contrib.admin.apps import AdminConfig


class DebugAdminConfig(AdminConfig):
    # Django's documented way to replace admin.site: every @admin.register lands on our site.
    default_site = "todolists.ui.site.DebugAdminSite"

"""Django's admin autodiscovery imports `<app>.admin`: the debug admin lives in todolists/ui/."""

from todolists.ui import admin  # noqa: F401

"""Django's admin autodiscovery imports `<app>.admin`: the debug admin lives in todolists/ui/.

Here too, in the admin's `ready()`, todolists adds to the event store's event page through the
hooks it declares (eventstore/event_page.py); it never replaces the event store's admin. (Not in
TodoListsConfig.ready(): the engine's modules never import the UI.)"""

from eventstore.event_page import event_panels, event_views
from todolists.ui import admin  # noqa: F401
from todolists.ui.event_page import event_skip_page, todo_event_panel

event_panels.register(todo_event_panel)
event_views.register(event_skip_page)

from django.apps import AppConfig


class OrdersConfig(AppConfig):
    name = "orders"

    def ready(self) -> None:
        # Explicit registration: event types on import, then the projection and the lists.
        from eventstore.projections import registry as projections
        from orders import events, todo  # noqa: F401
        from orders import projections as order_projections
        from todolists.lists import registry as todo_lists

        projections.register(order_projections.orders)
        todo_lists.register(todo.orders_to_confirm)
        todo_lists.register(todo.orders_to_cancel)

from django.apps import AppConfig


class OrdersConfig(AppConfig):
    name = "orders"

    def ready(self) -> None:
        # Explicit registration: event types on import, then the projection and the lists.
        from eventstore.projections import registry as projections
        from orders import projections as order_projections
        from orders import todo
        from orders.events import OrderCancelled, OrderPlaced
        from todolists.lists import registry as todo_lists
        from todolists.process import Step
        from todolists.process import registry as steps

        projections.register(order_projections.orders)
        todo_lists.register(todo.orders_to_confirm)
        todo_lists.register(todo.orders_to_cancel)
        # The commands that are not automations, for the process map.
        steps.register(Step(name="Place order", records=(OrderPlaced.event_type,), actor="customer"))
        steps.register(Step(name="Cancel order", records=(OrderCancelled.event_type,), actor="operator"))

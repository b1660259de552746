from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    name = "payments"

    def ready(self) -> None:
        # Explicit registration: event types on import, then the projection and the list.
        from eventstore.events import event_rule
        from eventstore.projections import registry as projections
        from payments import events, todo  # noqa: F401
        from payments import projections as payment_projections
        from payments.gateway import order_chargeable
        from todolists.lists import registry as todo_lists
        from todolists.process import Step
        from todolists.process import registry as steps

        projections.register(payment_projections.payments)
        todo_lists.register(todo.payments_to_issue)
        event_rule("OrderPlaced")(order_chargeable)
        # Not an automation, so declared for the process map.
        steps.register(
            Step(
                name="Give up on a parked payment",
                records=("PaymentIssued", "PaymentFailed"),
                actor="operator",
            )
        )

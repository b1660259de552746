from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    name = "payments"

    def ready(self) -> None:
        # Explicit registration: event types on import, then the projection and the list.
        from eventstore.events import event_rule
        from eventstore.projections import registry as projections
        from payments import events, todo  # noqa: F401
        from payments import projections as payment_projections
        from payments.commands import payment_give_up_parked
        from payments.gateway import order_chargeable
        from todolists.error_groups import GroupAction
        from todolists.error_groups import registry as group_actions
        from todolists.lists import registry as todo_lists
        from todolists.models import TodoItem
        from todolists.process import Step
        from todolists.process import registry as steps

        projections.register(payment_projections.payments)
        todo_lists.register(todo.payments_to_issue)
        event_rule("OrderPlaced")(order_chargeable)
        # The dashboard's error groups of the payments list offer "give up on all".
        group_actions.register(
            GroupAction(
                name="give_up",
                label="Give up on all",
                statuses=(TodoItem.Status.PARKED,),
                act=payment_give_up_parked,
                permission="payments.give_up_payment",
                list_name=todo.payments_to_issue.name,
            )
        )
        # Not an automation, so declared for the process map.
        steps.register(
            Step(
                name="Give up on a parked payment",
                records=("PaymentIssued", "PaymentFailed"),
                actor="operator",
            )
        )

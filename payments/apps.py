from __future__ import annotations

from typing import TYPE_CHECKING

from django.apps import AppConfig

if TYPE_CHECKING:
    from payments.gateway import PaymentGateway


class PaymentsConfig(AppConfig):
    name = "payments"

    gateway: PaymentGateway | None = None
    """The gateway to charge through. None: the one the settings name, built on each use
    (payments/gateway.py, payment_gateway). Install another provider's adapter here, in ready();
    tests install their fakes here too (the `gateway` fixture)."""

    def ready(self) -> None:
        # Explicit registration: event types on import, then the projection and the list.
        from eventstore.events import event_rule
        from eventstore.projections import registry as projections
        from payments import conf, todo  # noqa: F401  (conf: the settings' system checks)
        from payments import projections as payment_projections
        from payments.commands import payment_give_up_parked
        from payments.events import OrderPlaced, PaymentFailed, PaymentIssued
        from payments.gateway import order_chargeable
        from todolists.lists import registry as todo_lists
        from todolists.models import TodoItem
        from todolists.process import Step
        from todolists.process import registry as steps
        from todolists.ui.error_groups import GroupAction
        from todolists.ui.error_groups import registry as group_actions

        projections.register(payment_projections.payments)
        todo_lists.register(todo.payments_to_issue)
        event_rule(OrderPlaced.event_type)(order_chargeable)
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
                records=(PaymentIssued.event_type, PaymentFailed.event_type),
                actor="operator",
            )
        )

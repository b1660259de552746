import json

from django.core.management.base import CommandError

from eventstore.setup_hint import MigratedCommand
from orders.commands import OrderRejected, order_place


class Command(MigratedCommand):
    help = "Place an order (appends OrderPlaced, which opens an item on 'payments to issue'); prints its id."

    def add_arguments(self, parser):
        parser.add_argument(
            "--amount", required=True, help="Positive amount, at most 2 decimals, e.g. 12.50."
        )
        parser.add_argument("--currency", required=True, help="ISO 4217 code, e.g. EUR (see README).")
        parser.add_argument("--customer", default="guest", help="Customer name or id (default: guest).")
        parser.add_argument(
            "--payment-method",
            default="pm_card_visa",
            help="Stripe test payment method: pm_card_visa succeeds, pm_card_chargeCustomerFail is declined.",
        )
        parser.add_argument("--order-id", default=None, help="UUID to use (default: a new one).")
        parser.add_argument("--json", action="store_true", help="Print the order as JSON.")

    def handle(self, *args, **options):
        try:
            order_id = order_place(
                amount=options["amount"],
                currency=options["currency"],
                customer=options["customer"],
                payment_method=options["payment_method"],
                order_id=options["order_id"],
                actor="manage.py place_order",
            )
        except OrderRejected as exc:
            raise CommandError(str(exc)) from None
        if options["json"]:
            self.stdout.write(json.dumps({"order_id": order_id}))
        else:
            self.stdout.write(order_id)

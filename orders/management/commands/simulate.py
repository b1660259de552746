import random

from django.core.management.base import CommandError

from eventstore.setup_hint import MigratedCommand
from orders.commands import order_place


class Command(MigratedCommand):
    help = "Place N demo orders; a share of them (--decline-rate) use a card that will be declined."

    def add_arguments(self, parser):
        parser.add_argument(
            "--orders", type=int, required=True, help="How many orders to place (1 to 10000)."
        )
        parser.add_argument(
            "--decline-rate", type=float, default=0.2, help="Share declined, 0 to 1 (default 0.2)."
        )
        parser.add_argument("--seed", type=int, default=None, help="Random seed, for a repeatable run.")

    def handle(self, *args, orders, decline_rate, seed, **options):
        if not 1 <= orders <= 10000:
            raise CommandError("--orders must be between 1 and 10000.")
        if not 0 <= decline_rate <= 1:
            raise CommandError("--decline-rate must be between 0 and 1.")
        rng = random.Random(seed)
        for i in range(orders):
            declined = rng.random() < decline_rate
            order_place(
                amount=f"{rng.randint(100, 50000) / 100:.2f}",
                currency=rng.choice(["EUR", "USD", "GBP"]),
                customer=f"demo-customer-{i % 17}",
                payment_method="pm_card_chargeCustomerFail" if declined else "pm_card_visa",
                actor="manage.py simulate",
            )
        self.stdout.write(f"placed {orders} orders")

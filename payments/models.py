from django.db import models


class Payment(models.Model):
    """Read model of an order's payment, built by the `payments` projection."""

    class Status(models.TextChoices):
        PENDING = "pending", "pending"
        ISSUED = "issued", "issued"
        FAILED = "failed", "failed"

    order_id = models.CharField(max_length=36, primary_key=True)
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    currency = models.CharField(max_length=3)
    payment_method = models.CharField(max_length=100)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    payment_id = models.CharField(max_length=100, blank=True, default="")
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    decline_code = models.CharField(max_length=100, blank=True, default="")
    requested_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True, help_text="When the first charge attempt began.")
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-requested_at"]
        permissions = [("give_up_payment", "Can give up on a parked payment (records its outcome)")]

    def __str__(self) -> str:
        return f"payment for {self.order_id} ({self.status})"


class InProcessCharge(models.Model):
    """The in-process gateway's own ledger: what a payment provider would hold on its side.

    Not a projection and not our truth; it lets tests count charges per order and gives the
    gateway Stripe's idempotency semantics across worker processes.
    """

    idempotency_key = models.CharField(max_length=200, unique=True)
    payment_id = models.CharField(max_length=100, unique=True)
    order_id = models.CharField(max_length=36, db_index=True)
    amount_minor = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    payment_method = models.CharField(max_length=100)
    succeeded = models.BooleanField()
    decline_code = models.CharField(max_length=100, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.payment_id} {'succeeded' if self.succeeded else 'declined'}"

from django.db import models


class Order(models.Model):
    """Read model of an order, built by the `orders` projection."""

    class Status(models.TextChoices):
        PLACED = "placed", "placed"
        CONFIRMED = "confirmed", "confirmed"
        CANCELLED = "cancelled", "cancelled"

    order_id = models.CharField(max_length=36, primary_key=True)
    customer = models.CharField(max_length=200)
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    currency = models.CharField(max_length=3)
    payment_method = models.CharField(max_length=100)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PLACED)
    payment_id = models.CharField(max_length=100, blank=True, default="")
    cancel_reason = models.TextField(blank=True, default="")
    placed_at = models.DateTimeField()
    confirmed_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-placed_at"]
        permissions = [("cancel_order", "Can cancel orders (records OrderCancelled)")]
        indexes = [models.Index(fields=["status", "placed_at"], name="order_status_idx")]

    def __str__(self) -> str:
        return f"order {self.order_id} ({self.status})"

from typing import Any

from django.db import models


class TransactionId(models.Func):
    """The inserting transaction's id on PostgreSQL (the log's read order); 0 elsewhere."""

    output_field = models.BigIntegerField()

    # Params stay a list, whatever django-stubs says: a migration's ALTER adds them to lists.
    def as_sql(  # type: ignore[override]
        self, compiler: Any, connection: Any, **extra_context: Any
    ) -> tuple[str, list[Any]]:
        return "0", []

    def as_postgresql(self, compiler: Any, connection: Any, **extra_context: Any) -> tuple[str, list[Any]]:
        return "(pg_current_xact_id()::text::bigint)", []


class Event(models.Model):
    """One fact in the append-only log. Never updated or deleted (a PostgreSQL trigger enforces it)."""

    position = models.BigAutoField(primary_key=True, help_text="Global position in the log.")
    stream_id = models.CharField(max_length=200)
    stream_version = models.PositiveIntegerField()
    type = models.CharField(max_length=100)
    schema_version = models.PositiveSmallIntegerField(default=1)
    data = models.JSONField()
    correlation_id = models.CharField(max_length=200, blank=True, default="")
    causation_id = models.CharField(max_length=200, blank=True, default="")
    actor = models.CharField(max_length=200, blank=True, default="")
    recorded_at = models.DateTimeField()
    tx_id = models.BigIntegerField(
        db_default=TransactionId(),
        editable=False,
        help_text="On PostgreSQL the id of the transaction that appended the event (readers order by "
        "it to never skip a late commit); 0 on SQLite, which has one writer at a time.",
    )

    class Meta:
        ordering = ["position"]
        constraints = [
            models.UniqueConstraint(
                fields=["stream_id", "stream_version"], name="event_stream_version_unique"
            ),
        ]
        indexes = [
            models.Index(fields=["correlation_id", "position"], name="event_correlation_idx"),
            models.Index(fields=["type", "position"], name="event_type_idx"),
            models.Index(fields=["tx_id", "position"], name="event_tx_order_idx"),
        ]

    def __str__(self) -> str:
        return f"#{self.position} {self.type} {self.stream_id}@{self.stream_version}"


class ProjectionCheckpoint(models.Model):
    """How far one projection has applied the log, and why it stopped if it did."""

    name = models.CharField(max_length=100, primary_key=True)
    position = models.BigIntegerField(default=0, help_text="The last event applied (or passed over).")
    tx_id = models.BigIntegerField(default=0, help_text="That event's transaction id: the read order.")
    updated_at = models.DateTimeField(auto_now=True)
    error_position = models.BigIntegerField(null=True, blank=True)
    error_type = models.CharField(max_length=100, blank=True, default="")
    error_message = models.TextField(blank=True, default="")
    error_count = models.PositiveIntegerField(default=0)
    error_at = models.DateTimeField(null=True, blank=True)
    skipped = models.JSONField(
        default=list,
        blank=True,
        help_text="Positions operators told this projection to pass over: a copy of the "
        "ProjectionEventSkipped and ParkedEventSkipped events in the log (a replay rebuilds it from them).",
    )
    parked = models.JSONField(
        default=list,
        blank=True,
        help_text="Business cases (correlation ids) parked for this projection: a copy of its "
        "ParkedEvent rows' cases, read under the checkpoint's lock so a healthy catch-up needs no extra query.",
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} @ {self.position}"

    @property
    def halted(self) -> bool:
        return self.error_position is not None


class ParkedEvent(models.Model):
    """An event one projection has not applied because its business case is parked: the case's
    first failing event (its `error` set) or one queued behind it (`error` empty), in log order.
    Projection state, not the log: a retry or a skip removes the rows (eventstore/parked_cases.py)."""

    projection = models.CharField(max_length=100)
    position = models.BigIntegerField(help_text="The event's position in the log.")
    tx_id = models.BigIntegerField(default=0, help_text="The event's transaction id: the read order.")
    correlation_id = models.CharField(max_length=200, help_text="The business case.")
    type = models.CharField(max_length=100)
    error = models.TextField(blank=True, default="", help_text="Empty: queued behind the case's first.")
    parked_at = models.DateTimeField()
    attempts = models.PositiveIntegerField(default=1)

    class Meta:
        ordering = ["projection", "tx_id", "position"]
        constraints = [
            models.UniqueConstraint(fields=["projection", "position"], name="parked_event_unique"),
        ]
        indexes = [models.Index(fields=["correlation_id", "projection"], name="parked_event_case_idx")]

    def __str__(self) -> str:
        return f"{self.projection}: #{self.position} {self.type} ({self.correlation_id})"

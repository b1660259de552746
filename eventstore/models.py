from django.db import models


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
        ]

    def __str__(self) -> str:
        return f"#{self.position} {self.type} {self.stream_id}@{self.stream_version}"


class ProjectionCheckpoint(models.Model):
    """How far one projection has applied the log, and why it stopped if it did."""

    name = models.CharField(max_length=100, primary_key=True)
    position = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)
    error_position = models.BigIntegerField(null=True, blank=True)
    error_type = models.CharField(max_length=100, blank=True, default="")
    error_message = models.TextField(blank=True, default="")
    error_count = models.PositiveIntegerField(default=0)
    error_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} @ {self.position}"

    @property
    def halted(self) -> bool:
        return self.error_position is not None

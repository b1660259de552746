from django.db import models
from django.db.models import Q
from django.db.models.functions import Now


class TodoItem(models.Model):
    """One open (or finished) obligation on a TODO list: a projection of the log.

    Everything but the claim columns can be rebuilt from events; the claim is lease bookkeeping
    that keeps two workers off the same item.
    """

    class Status(models.TextChoices):
        OPEN = "open", "open"
        PARKED = "parked", "parked"
        DONE = "done", "done"

    list_name = models.CharField(max_length=100)
    key = models.CharField(max_length=200, help_text="What the item is about, e.g. the order id.")
    correlation_id = models.CharField(max_length=200, blank=True, default="")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    payload = models.JSONField(default=dict, help_text="Data of the event that opened the item.")
    opened_at = models.DateTimeField()
    opened_position = models.BigIntegerField()
    opened_by = models.CharField(max_length=100)
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_position = models.BigIntegerField(null=True, blank=True)
    closed_by = models.CharField(max_length=100, blank=True, default="")
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    parked_at = models.DateTimeField(null=True, blank=True)
    parked_reason = models.TextField(blank=True, default="")
    # Operational state, not rebuilt by replay.
    claimed_by = models.CharField(max_length=200, blank=True, default="")
    claimed_until = models.DateTimeField(null=True, blank=True)
    # When the last claim was made, and when the task that made it started (the nudge's
    # arrival): where an item's time goes, for the benchmark's stage table. Set by the claim's
    # own UPDATE, so they cost no query.
    claimed_at = models.DateTimeField(null=True, blank=True)
    task_started_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["opened_position"]
        permissions = [("operate_todoitem", "Can retry or park TODO items (records events)")]
        constraints = [models.UniqueConstraint(fields=["list_name", "key"], name="todo_item_list_key_unique")]
        indexes = [
            models.Index(fields=["list_name", "status", "next_attempt_at"], name="todo_item_due_idx"),
            models.Index(fields=["correlation_id"], name="todo_item_correlation_idx"),
            # An event's page lists the items it opened or closed.
            models.Index(fields=["opened_position"], name="todo_item_opened_idx"),
            models.Index(fields=["closed_position"], name="todo_item_closed_idx"),
            # The dashboard and the verdict read the items not done (few) and count the done ones
            # (most of the table) apart, each from its own index, never the whole table.
            models.Index(
                fields=["list_name", "status", "next_attempt_at"],
                condition=~Q(status="done"),
                name="todo_item_not_done_idx",
            ),
            models.Index(
                fields=["closed_at", "list_name"], condition=Q(status="done"), name="todo_item_done_at_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.list_name}: {self.key} ({self.status})"

    @classmethod
    def lease_expired(cls) -> Q:
        """Open, still claimed, and the lease ran out without a release: its worker died or hangs.
        (A release clears `claimed_by`; a parked or done item is never claimed.)"""
        return Q(status=cls.Status.OPEN, claimed_until__lt=Now()) & ~Q(claimed_by="")

    @classmethod
    def due(cls) -> Q:
        """Open and not waiting out a backoff, by the database's clock."""
        return Q(status=cls.Status.OPEN) & (Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=Now()))


class PendingNudge(models.Model):
    """A nudge task queued for a list and not yet started: operational state, like a claim.

    A burst of appends (a hundred orders a second) then queues one task per list, not one per
    append; the task clears the row when it starts, so what arrives while it works is nudged again.
    """

    list_name = models.CharField(max_length=100, primary_key=True)
    queued_at = models.DateTimeField()
    trigger_tx_id = models.BigIntegerField(
        default=0, help_text="The newest transaction id the queued task must see (0: any)."
    )

    def __str__(self) -> str:
        return f"nudge for {self.list_name} queued at {self.queued_at}"


class WorkerHeartbeat(models.Model):
    """A live qcluster worker process says so every TODO_HEARTBEAT_SECONDS: operational state, like
    a claim. `worker` is the name its leases carry (host:pid), so a dead worker's expired leases
    and its silent heartbeat name the same process. A row whose beat is old is a worker that
    stopped or died; the verdict reads them (todolists/ui/verdict.py)."""

    worker = models.CharField(max_length=200, primary_key=True)
    cluster = models.CharField(max_length=100, blank=True, default="")
    host = models.CharField(max_length=200)
    pid = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    last_beat_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["last_beat_at"], name="worker_heartbeat_beat_idx")]

    def __str__(self) -> str:
        return f"{self.worker} (last beat {self.last_beat_at})"


class TodoListPause(models.Model):
    """Whether a list is paused, by whom and why: a projection of TodoListPaused / TodoListResumed
    (todolists/pause.py), so a replay rebuilds it. No row: the list was never paused."""

    list_name = models.CharField(max_length=100, unique=True)
    paused = models.BooleanField(default=False)
    actor = models.CharField(max_length=200, blank=True, default="")
    reason = models.TextField(blank=True, default="")
    changed_at = models.DateTimeField()
    position = models.BigIntegerField()

    def __str__(self) -> str:
        return f"{self.list_name}: {'paused' if self.paused else 'running'}"


class TodoListRollup(models.Model):
    """What happened on a list per minute and per hour: items opened, closed, parked, failed
    attempts, backoffs begun and ended, and latency histogram buckets. Written by the list's own
    projection from its items' changes (todolists/rollup.py), so a replay rebuilds it and the
    charts read a few hundred rows whatever the size of the log."""

    class Period(models.TextChoices):
        MINUTE = "m", "minute"
        HOUR = "h", "hour"
        TOTAL = "t", "all time"
        """One row per list and measure, `at` 2000-01-01: the counts since the log began."""

    list_name = models.CharField(max_length=100)
    period = models.CharField(max_length=1, choices=Period.choices)
    at = models.DateTimeField(help_text="The start of the minute or hour.")
    measure = models.CharField(max_length=40)
    n = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["list_name", "period", "at", "measure"], name="todo_rollup_bucket_unique"
            )
        ]
        indexes = [models.Index(fields=["period", "at"], name="todo_rollup_window_idx")]

    def __str__(self) -> str:
        return f"{self.list_name} {self.at} {self.measure}: {self.n}"

"""The operator's way out for a parked business case: see them, retry them, skip their first event.

A case is parked by a projection's catch-up (eventstore/catchup.py) when one of its events fails;
the events behind it wait queued. After a fix, `parked_case_retry` applies the case's parked
events again, in log order, in every projection that parked it. `parked_case_skip` records one
`ParkedEventSkipped` operator event for the case (in the order's story, with the reason), which
every replay of those projections honours, then applies the events queued behind it.
Both work under each projection's checkpoint lock, so no catch-up runs beside them.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import logging

from django.db import transaction
from django.db.models import Count

from eventstore.catchup import case_apply, checkpoint_locked
from eventstore.events import ParkedEventSkipped
from eventstore.models import Event, ParkedEvent, ProjectionCheckpoint
from eventstore.parked import error_text
from eventstore.projection import registry
from eventstore.record import RecordedEvent
from eventstore.store import event_append

logger = logging.getLogger(__name__)


class ParkedCaseRefused(ValueError):
    """A retry or skip was refused; the message says why. Nothing was appended or applied."""


@dataclasses.dataclass(frozen=True)
class ParkedCase:
    """One parked business case, across the projections that parked it."""

    correlation_id: str
    projections: list[str]
    position: int
    """Its first failing event."""
    type: str
    error: str
    since: datetime.datetime
    attempts: int
    queued: int
    """Events waiting behind the first."""


@dataclasses.dataclass(frozen=True)
class CaseOutcome:
    """What a retry or skip did in one projection."""

    projection: str
    applied: int
    still_parked: bool
    error: str = ""
    """The error of the event the case is parked on again."""


def parked_cases_list(*, limit: int = 500, correlation_id: str | None = None) -> list[ParkedCase]:
    """The parked cases (or the one asked for), oldest first. Two queries."""
    heads_qs = ParkedEvent.objects.exclude(error="")
    if correlation_id is not None:
        heads_qs = heads_qs.filter(correlation_id=correlation_id)
    heads = list(heads_qs.order_by("parked_at", "position")[:limit])
    queued = dict(
        ParkedEvent.objects.filter(error="", correlation_id__in={h.correlation_id for h in heads})
        .values_list("correlation_id")
        .annotate(n=Count("position", distinct=True))
    )
    by_case: dict[str, list[ParkedEvent]] = collections.defaultdict(list)
    for head in heads:
        by_case[head.correlation_id].append(head)
    cases = []
    for case, rows in by_case.items():
        first = min(rows, key=lambda r: (r.tx_id, r.position))
        cases.append(
            ParkedCase(
                correlation_id=case,
                projections=sorted({r.projection for r in rows}),
                position=first.position,
                type=first.type,
                error=first.error,
                since=min(r.parked_at for r in rows),
                attempts=max(r.attempts for r in rows),
                queued=queued.get(case, 0),
            )
        )
    return sorted(cases, key=lambda c: (c.since, c.position))


def _parking(correlation_id: str) -> list[ProjectionCheckpoint]:
    """Lock the checkpoints of the projections that parked the case, in name order (one lock order
    for every caller); refused when none has."""
    names = sorted(
        set(ParkedEvent.objects.filter(correlation_id=correlation_id).values_list("projection", flat=True))
    )
    locked = [checkpoint_locked(name) for name in names]
    # A retry or skip that held a lock meanwhile may have resolved the case somewhere: read again.
    still = set(
        ParkedEvent.objects.filter(correlation_id=correlation_id).values_list("projection", flat=True)
    )
    locked = [checkpoint for checkpoint in locked if checkpoint.name in still]
    if not locked:
        raise ParkedCaseRefused(f"business case {correlation_id} is not parked")
    return locked


def _case_resume(checkpoint: ProjectionCheckpoint, correlation_id: str) -> CaseOutcome:
    """Apply the case's parked events in this projection, in log order, up to the first that fails
    again: it keeps its error (one more attempt), those behind it stay queued."""
    rows = list(
        ParkedEvent.objects.filter(projection=checkpoint.name, correlation_id=correlation_id).order_by(
            "tx_id", "position"
        )
    )
    stored = Event.objects.filter(position__in=[r.position for r in rows])
    events = {e.position: RecordedEvent.from_row(e) for e in stored}
    projection = registry.get(checkpoint.name)
    handled, error = case_apply(projection, [events[r.position] for r in rows], set(checkpoint.skipped), {})
    ParkedEvent.objects.filter(pk__in=[r.pk for r in rows[:handled]]).delete()
    if error is None:
        checkpoint.parked = [c for c in checkpoint.parked if c != correlation_id]
        checkpoint.save(update_fields=["parked"])
        return CaseOutcome(checkpoint.name, handled, still_parked=False)
    head = rows[handled]
    head.attempts += 1 if head.error else 0
    head.error = error_text(error)
    head.save(update_fields=["attempts", "error"])
    return CaseOutcome(checkpoint.name, handled, still_parked=True, error=head.error)


def parked_case_retry(*, correlation_id: str, actor: str) -> list[CaseOutcome]:
    """Apply a parked case's events again (after a fix) in every projection that parked it."""
    with transaction.atomic():
        outcomes = [_case_resume(checkpoint, correlation_id) for checkpoint in _parking(correlation_id)]
    logger.info("%s retried parked case %s: %s", actor, correlation_id, outcomes)
    return outcomes


def parked_case_skip(
    *, correlation_id: str, reason: str, actor: str, position: int | None = None
) -> list[CaseOutcome]:
    """Record one ParkedEventSkipped for the case's first parked event (the projections that parked
    it named in it), then apply the events queued behind it as a retry does.

    `position` is the event the operator looked at: if the case is parked on another one by now
    (a second click, another operator, a cached page), nothing is skipped."""
    reason = reason.strip()
    if not reason:
        raise ParkedCaseRefused("a reason is required: it stays in the log beside the skip")
    with transaction.atomic():
        checkpoints = _parking(correlation_id)
        heads = {
            cp.name: ParkedEvent.objects.filter(projection=cp.name, correlation_id=correlation_id)
            .order_by("tx_id", "position")
            .values_list("position", flat=True)[0]
            for cp in checkpoints
        }
        if position is not None and set(heads.values()) != {position}:
            now = ", ".join(f"#{p}" for p in sorted(set(heads.values())))
            raise ParkedCaseRefused(
                f"business case {correlation_id} is parked on event {now} now, not #{position}: "
                "nothing was skipped; look at it again"
            )
        by_position: dict[int, list[str]] = collections.defaultdict(list)
        for name, position in heads.items():
            by_position[position].append(name)
        for position, names in sorted(by_position.items()):  # one, unless the projections differ
            event_append(
                stream_id=f"parked-{correlation_id}",
                events=[ParkedEventSkipped(position=position, projections=sorted(names), reason=reason)],
                expected_version=None,
                correlation_id=correlation_id,
                causation_id=str(position),
                actor=actor,
            )
        for checkpoint in checkpoints:
            # The checkpoint's copy of the log's skips, so a catch-up needs no extra query.
            checkpoint.skipped = sorted({*checkpoint.skipped, heads[checkpoint.name]})
            checkpoint.save(update_fields=["skipped"])
        return [_case_resume(checkpoint, correlation_id) for checkpoint in checkpoints]

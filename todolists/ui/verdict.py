"""The verdict: one function decides ok / attention / failing for each list, projection, the
cluster and the broker, each non-ok finding a sentence with its cause, since when, and the next
step. The dashboard banner and list rows, /health/process/, `todo_status --check`,
`projection_status` and /metrics all read `process_verdict()`; none decides on its own.

A fixed number of queries whatever the size of the log or the lists (tests/test_verdict.py counts
them): the numbers per list (todolists/ui/status.py), the projections' checkpoints with the time of
the oldest event each has not applied, the last failed attempts (at most FAILURES_READ, newest
first, by the (type, position) index), the errors of open items grouped, expired leases grouped,
the heartbeats, the pauses, and django-q2's sweep and queue.

What each finding means and what to do is in README ("What the verdict says").
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import enum
import re
from collections.abc import Iterable, Mapping
from typing import Any

from django.db.models import BooleanField, Count, ExpressionWrapper, Min, OuterRef, Subquery
from django.utils import dateformat, timezone

from eventstore.models import Event, ProjectionCheckpoint
from eventstore.parked_cases import ParkedCase, parked_cases_list
from eventstore.projections import ProjectionStatus, projection_status, unregistered_events
from todolists.conf import conf
from todolists.events import TodoAttemptFailed
from todolists.heartbeat import alive_q
from todolists.lists import registry
from todolists.models import TodoItem, TodoListPause, WorkerHeartbeat
from todolists.ui.status import ClusterStatus, ListStatus, cluster_status, expired_leases, todo_lists_status

FAILURES_READ = 500
"""Failed attempts read per verdict, newest first: enough to tell a rate over the window."""
ERROR_GROUPS_READ = 200
"""Distinct errors of open items read per verdict (grouped by kind afterwards)."""


class Level(enum.StrEnum):
    OK = "ok"
    ATTENTION = "attention"
    FAILING = "failing"

    @property
    def rank(self) -> int:
        return list(Level).index(self)


def worst(levels: Iterable[Level]) -> Level:
    return max(levels, key=lambda level: level.rank, default=Level.OK)


def when(moment: datetime.datetime | None) -> str:
    """One absolute format with the zone, for every sentence."""
    return dateformat.format(timezone.localtime(moment), "Y-m-d H:i:s T") if moment else "?"


def _seconds(value: float) -> str:
    value = round(value)
    return f"{value} s" if value < 120 else f"{value // 60} min" if value < 7200 else f"{value // 3600} h"


@dataclasses.dataclass(frozen=True)
class Finding:
    level: Level
    subject: str
    """"list:<name>", "projection:<name>", "cluster", "broker" or "log"."""
    cause: str
    since: datetime.datetime | None
    next_step: str
    also: tuple[str, ...] = ()
    """Further subjects the same finding is about (one parked case in several projections): it
    counts for each of them, yet is said once."""

    @property
    def subjects(self) -> tuple[str, ...]:
        return (self.subject, *self.also)

    def concerns(self, *subjects: str) -> bool:
        return any(s in self.subjects for s in subjects)

    def sentence(self) -> str:
        since = f" since {when(self.since)}" if self.since else ""
        return f"{self.cause}{since}: {self.next_step}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "level": str(self.level),
            "subject": self.subject,
            "subjects": list(self.subjects),
            "cause": self.cause,
            "since": self.since.isoformat() if self.since else None,
            "next_step": self.next_step,
            "sentence": self.sentence(),
        }


_STATUS_CODE = re.compile(r"\b([45]\d\d)\b")


def error_kind(message: str) -> str:
    """ "GatewayUnavailable: ... (503)" -> "GatewayUnavailable (503)": the exception's name and the
    HTTP status it carries, without the details that differ per item."""
    name = message.split(":", 1)[0].strip() or "error"
    code = _STATUS_CODE.search(message[len(name) :])
    return f"{name} ({code.group(1)})" if code else name


@dataclasses.dataclass(frozen=True)
class ErrorGroup:
    """Open items of one list whose last error is of one kind."""

    list_name: str
    kind: str
    parked: int
    retrying: int

    @property
    def label(self) -> str:
        counts = [f"{n} {what}" for n, what in ((self.parked, "parked"), (self.retrying, "retrying")) if n]
        return f"{', '.join(counts)}: {self.kind}"


@dataclasses.dataclass(frozen=True)
class Worker:
    worker: str
    cluster: str
    host: str
    pid: int
    started_at: datetime.datetime
    last_beat_at: datetime.datetime
    alive: bool


@dataclasses.dataclass(frozen=True)
class Pause:
    list_name: str
    actor: str
    reason: str
    since: datetime.datetime


@dataclasses.dataclass(frozen=True)
class ProjectionRow:
    status: ProjectionStatus
    level: Level
    oldest_unread_at: datetime.datetime | None


@dataclasses.dataclass(frozen=True)
class Verdict:
    level: Level
    findings: list[Finding]
    lists: list[ListStatus]
    projections: list[ProjectionStatus]
    projection_rows: list[ProjectionRow]
    cluster: ClusterStatus
    workers: list[Worker]
    error_groups: list[ErrorGroup]
    pauses: dict[str, Pause]
    expired_leases: list[TodoItem]
    """The most recent of them (status.EXPIRED_LEASES_SHOWN); the count is per list."""
    unregistered: dict[str, int]
    parked_cases: list[ParkedCase] = dataclasses.field(default_factory=list)
    """Business cases projections parked, oldest first (eventstore/parked_cases.py)."""

    def level_of(self, subject: str) -> Level:
        return _level_of(self.findings, subject)

    def findings_of(self, subject: str) -> list[Finding]:
        return [f for f in self.findings if f.concerns(subject)]

    @property
    def reasons(self) -> list[str]:
        return [f.sentence() for f in self.findings]

    @property
    def expired_lease_count(self) -> int:
        return sum(s.expired_leases for s in self.lists)

    @property
    def list_rows(self) -> list[dict[str, Any]]:
        """Per list, for the dashboard: its numbers, findings, pause and error groups."""
        return [
            {
                "status": s,
                "findings": [f for f in self.findings if f.concerns(*_subjects(s.name))],
                "pause": self.pauses.get(s.name),
                "groups": [g for g in self.error_groups if g.list_name == s.name],
            }
            for s in self.lists
        ]

    def list_state(self, name: str) -> tuple[str, str]:
        """A list's state for a picture, as (css class, words): paused, halted or stuck when it
        is, else its verdict's level."""
        status = next((s for s in self.lists if s.name == name), None)
        if name in self.pauses:
            return "paused", "PAUSED"
        if status is not None and status.state != "ok":
            return status.state, status.state.upper()
        level = _level_of(self.findings, *_subjects(name))
        return ("ok", "ok") if level == Level.OK else (str(level), str(level).upper())

    @property
    def live_workers(self) -> list[Worker]:
        return [w for w in self.workers if w.alive]

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": str(self.level),
            "reasons": self.reasons,
            "findings": [f.as_dict() for f in self.findings],
            "lists": {s.name: s.as_dict() for s in self.lists},
            "projections": {
                r.status.name: {
                    "level": str(r.level),
                    "lag": r.status.lag,
                    "halted": r.status.halted,
                    "error_position": r.status.error_position,
                    "skipped": r.status.skipped,
                    "parked": r.status.parked,
                    "held_back_seconds": r.status.held_back_seconds,
                }
                for r in self.projection_rows
            },
            "workers": [
                {
                    "worker": w.worker,
                    "host": w.host,
                    "pid": w.pid,
                    "alive": w.alive,
                    "started_at": w.started_at.isoformat(),
                    "last_beat_at": w.last_beat_at.isoformat(),
                }
                for w in self.workers
            ],
            "error_groups": [dataclasses.asdict(g) for g in self.error_groups],
            "parked_cases": [
                {**dataclasses.asdict(c), "since": c.since.isoformat()} for c in self.parked_cases
            ],
            "broker_queued": self.cluster.queued,
        }


def _level_of(findings: Iterable[Finding], *subjects: str) -> Level:
    """The worst level of the findings about any of the subjects (ok: none)."""
    return worst(f.level for f in findings if f.concerns(*subjects))


def _subjects(list_name: str) -> tuple[str, str]:
    return f"list:{list_name}", f"projection:{registry.get(list_name).projection_name}"


# --- reading (a fixed number of queries) -----------------------------------------------------------


def _oldest_unread(names: list[str]) -> dict[str, datetime.datetime | None]:
    """For each projection, when the oldest event it has not applied was recorded (None: none)."""
    first_after = Event.objects.filter(position__gt=OuterRef("position")).order_by("position")
    rows = dict(
        ProjectionCheckpoint.objects.filter(name__in=names)
        .annotate(at=Subquery(first_after.values("recorded_at")[:1]))
        .values_list("name", "at")
    )
    # A projection that never ran has everything unread (asked always: a fixed number of queries).
    first = Event.objects.order_by("position").values_list("recorded_at", flat=True).first()
    return {n: rows.get(n, first) for n in names}


Attempt = tuple[datetime.datetime, str | None]
"""When, and the error (None: the item was done)."""


def _attempts(since: datetime.datetime) -> dict[str, list[Attempt]]:
    """Per list, the attempts since `since`, oldest first: the failed ones from the log, the
    successful ones as the items closed (at most FAILURES_READ of each, the newest)."""
    failed = Event.objects.filter(type=TodoAttemptFailed.event_type).order_by("-position")[:FAILURES_READ]
    done = TodoItem.objects.filter(status=TodoItem.Status.DONE, closed_at__gte=since).order_by("-closed_at")
    per_list: dict[str, list[Attempt]] = collections.defaultdict(list)
    for at, data in failed.values_list("recorded_at", "data"):
        if at >= since:
            per_list[data["list"]].append((at, data["error"]))
    for name, closed_at in done.values_list("list_name", "closed_at")[:FAILURES_READ]:
        if closed_at is not None:  # always set on a done item (filtered above)
            per_list[name].append((closed_at, None))
    return {name: sorted(attempts, key=lambda a: a[0]) for name, attempts in per_list.items()}


def _error_groups() -> list[ErrorGroup]:
    rows = (
        TodoItem.objects.exclude(status=TodoItem.Status.DONE)
        .exclude(last_error="")
        .order_by()
        .values("list_name", "status", "last_error")
        .annotate(n=Count("pk"))
        .order_by("-n")[:ERROR_GROUPS_READ]
    )
    counts: dict[tuple[str, str], list[int]] = collections.defaultdict(lambda: [0, 0])
    for r in rows:
        counts[(r["list_name"], error_kind(r["last_error"]))][r["status"] != TodoItem.Status.PARKED] += r["n"]
    return sorted(
        (ErrorGroup(list_name=ln, kind=k, parked=p, retrying=r) for (ln, k), (p, r) in counts.items()),
        key=lambda g: (g.list_name, -(g.parked + g.retrying)),
    )


def _expired_holders() -> dict[str, list[tuple[str, int, datetime.datetime]]]:
    rows = (
        TodoItem.objects.filter(TodoItem.lease_expired())
        .order_by()
        .values("list_name", "claimed_by")
        .annotate(n=Count("pk"), since=Min("claimed_until"))
    )
    holders: dict[str, list[tuple[str, int, datetime.datetime]]] = collections.defaultdict(list)
    for r in rows:
        holders[r["list_name"]].append((r["claimed_by"], r["n"], r["since"]))
    return holders


def _workers() -> list[Worker]:
    alive = ExpressionWrapper(alive_q(), output_field=BooleanField())
    return [
        Worker(**row)
        for row in WorkerHeartbeat.objects.annotate(alive=alive)
        .order_by("-last_beat_at")
        .values("worker", "cluster", "host", "pid", "started_at", "last_beat_at", "alive")
    ]


def _pauses() -> dict[str, Pause]:
    return {
        p.list_name: Pause(list_name=p.list_name, actor=p.actor, reason=p.reason, since=p.changed_at)
        for p in TodoListPause.objects.filter(paused=True)
    }


# --- deciding -------------------------------------------------------------------------------------


def process_verdict() -> Verdict:
    now = timezone.now()
    projections = projection_status()
    lists = todo_lists_status(projections=projections)
    oldest_unread = _oldest_unread([p.name for p in projections])
    attempts = _attempts(now - datetime.timedelta(seconds=conf.failing_window_seconds))
    groups = _error_groups()
    holders = _expired_holders()
    workers = _workers()
    pauses = _pauses()
    unregistered = unregistered_events()
    cluster = cluster_status()
    parked = parked_cases_list() if any(p.parked for p in projections) else []

    findings = _worker_findings(now, lists, oldest_unread, workers, pauses)
    for p in projections:
        findings += _projection_findings(now, p, oldest_unread.get(p.name), workers)
    findings += _halted_findings([p for p in projections if p.halted], oldest_unread)
    findings += _parked_findings(parked)  # each about every projection its cases are parked in
    for s in lists:
        findings += _list_findings(
            s, attempts.get(s.name, []), groups, holders.get(s.name, []), pauses, workers
        )
    findings += _log_findings(projections, unregistered)
    findings += _broker_findings(cluster)
    findings.sort(key=lambda f: -f.level.rank)
    lists = [
        dataclasses.replace(s, level=str(_level_of(findings, *_subjects(s.name))), paused=s.name in pauses)
        for s in lists
    ]
    return Verdict(
        level=worst(f.level for f in findings),
        findings=findings,
        lists=lists,
        projections=projections,
        projection_rows=[
            ProjectionRow(p, _level_of(findings, f"projection:{p.name}"), oldest_unread.get(p.name))
            for p in projections
        ],
        cluster=cluster,
        workers=workers,
        error_groups=groups,
        pauses=pauses,
        expired_leases=expired_leases(),
        unregistered=unregistered,
        parked_cases=parked,
    )


def _broker_findings(cluster: ClusterStatus) -> list[Finding]:
    if cluster.queued is not None:
        return []
    return [
        Finding(
            Level.ATTENTION,
            "broker",
            "the broker does not answer (Redis down?)",
            None,
            "nudges fall back to the minute sweep; restore the broker for immediate work",
        )
    ]


def _due_since(now: datetime.datetime, s: ListStatus) -> datetime.datetime | None:
    return (
        now - datetime.timedelta(seconds=s.oldest_due_age_seconds)
        if s.oldest_due_age_seconds is not None
        else None
    )


def _worker_findings(
    now: datetime.datetime,
    lists: list[ListStatus],
    oldest_unread: dict[str, datetime.datetime | None],
    workers: list[Worker],
    pauses: dict[str, Pause],
) -> list[Finding]:
    """Work waiting (a due item on a running list, or an event a projection has not read) with no
    live worker for longer than TODO_NO_WORKER_AFTER_SECONDS: failing."""
    if any(w.alive for w in workers):
        return []
    waiting = [t for s in lists if s.name not in pauses and (t := _due_since(now, s))]
    waiting += [t for t in oldest_unread.values() if t]
    if not waiting:
        return []
    last_seen = workers[0] if workers else None
    dead_at = (
        last_seen.last_beat_at + datetime.timedelta(seconds=conf.worker_dead_after_seconds)
        if last_seen
        else None
    )
    since = max(min(waiting), dead_at) if dead_at else min(waiting)
    if (now - since).total_seconds() <= conf.no_worker_after_seconds:
        return []
    seen = (
        f" (the last one, {last_seen.worker}, last beat at {when(last_seen.last_beat_at)})"
        if last_seen
        else " (none has ever reported)"
    )
    return [
        Finding(
            Level.FAILING,
            "cluster",
            f"no worker is running{seen} while work waits",
            since,
            "start `manage.py qcluster`",
        )
    ]


def _projection_findings(
    now: datetime.datetime,
    p: ProjectionStatus,
    oldest_unread: datetime.datetime | None,
    workers: list[Worker],
) -> list[Finding]:
    subject = f"projection:{p.name}"
    if p.halted:
        return []  # _halted_findings: one per event, about every projection halted on it
    threshold = conf.not_moving_after_seconds
    if not (p.lag and oldest_unread and (now - oldest_unread).total_seconds() > threshold):
        return []
    if p.held_back_seconds is not None:
        cause, step = (
            f"a write transaction open for {_seconds(p.held_back_seconds)} (pid {p.held_back_pid}) holds readers back",
            f"commit or end that transaction (SELECT pg_terminate_backend({p.held_back_pid}))",
        )
    elif not any(w.alive for w in workers):
        cause, step = "no worker is running", "start `manage.py qcluster`"
    else:
        cause, step = (
            "the workers do not keep up or their tasks fail",
            "see the cluster's failed tasks and the worker logs",
        )
    return [
        Finding(
            Level.FAILING,
            subject,
            f"projection {p.name} has not read {p.lag} event(s) for over {_seconds(threshold)}: {cause}",
            oldest_unread,
            step,
        )
    ]


def _list_findings(
    s: ListStatus,
    attempts: list[Attempt],
    groups: list[ErrorGroup],
    holders: list[tuple[str, int, datetime.datetime]],
    pauses: dict[str, Pause],
    workers: list[Worker],
) -> list[Finding]:
    subject = f"list:{s.name}"
    name = s.title or s.name
    findings = []
    pause = pauses.get(s.name)
    if pause:
        findings.append(
            Finding(
                Level.ATTENTION,
                subject,
                f"{name} is paused by {pause.actor} ({pause.reason}); {s.due} item(s) wait",
                pause.since,
                "resume it from the dashboard when the cause is gone",
            )
        )
    findings += _failing_work(subject, name, attempts)
    if s.parked:
        parked = ", ".join(f"{g.parked} {g.kind}" for g in groups if g.list_name == s.name and g.parked)
        findings.append(
            Finding(
                Level.ATTENTION,
                subject,
                f"{name}: {s.parked} item(s) parked ({parked or 'no error recorded'})",
                s.oldest_parked_at,
                "retry, park or give up on them from the error groups on the dashboard",
            )
        )
    for worker, n, since in holders:
        findings.append(
            Finding(
                Level.ATTENTION,
                subject,
                f"{name}: {n} item(s) held by {worker}, whose lease ran out (the worker died or hangs)",
                since,
                "the next claim takes them over; if none comes, start `manage.py qcluster`",
            )
        )
    due_age = s.oldest_due_age_seconds  # set whenever the list is stuck
    if s.stuck and due_age is not None and not pause:
        findings.append(_stuck(subject, name, s, due_age, alive=any(w.alive for w in workers)))
    return findings


def _failing_work(subject: str, name: str, attempts: list[Attempt]) -> list[Finding]:
    """More than the declared share of the list's last attempts failed: grouped by error kind."""
    last = attempts[-conf.failing_attempts :]
    failed = [(at, error) for at, error in last if error is not None]
    if len(failed) < conf.failing_min_attempts or len(failed) / len(last) <= conf.failing_rate:
        return []
    kinds = collections.Counter(error_kind(e) for _, e in failed).most_common()
    top, n = kinds[0]
    others = "".join(f", {m} with {k}" for k, m in kinds[1:3])
    return [
        Finding(
            Level.FAILING,
            subject,
            f"{name}: {len(failed)} of the last {len(last)} attempts failed, {n} with {top}{others}",
            failed[0][0],
            _failing_step(top),
        )
    ]


def _stuck(subject: str, name: str, s: ListStatus, due_age: float, *, alive: bool) -> Finding:
    return Finding(
        Level.FAILING,
        subject,
        f"{name}: an item has been due for {_seconds(due_age)} "
        f"(threshold {_seconds(s.stuck_after_seconds)})" + ("" if alive else " and no worker is running"),
        s.oldest_due_at,
        "see the cluster's failed tasks and the worker logs" if alive else "start `manage.py qcluster`",
    )


def _parked_findings(parked: list[ParkedCase]) -> list[Finding]:
    """Attention, not failing: every other business case goes on; these wait for an operator.
    One finding per set of projections the cases are parked in (one bad OrderPlaced parks its case
    in every projection that reads it: one thing to fix, said once), about each of them."""
    by_projections: dict[tuple[str, ...], list[ParkedCase]] = {}
    for case in parked:  # oldest first, so each group's first is its oldest
        by_projections.setdefault(tuple(case.projections), []).append(case)
    findings = []
    for names, cases in by_projections.items():
        first = cases[0]
        subjects = [f"projection:{name}" for name in names]
        findings.append(
            Finding(
                Level.ATTENTION,
                subjects[0],
                f"{len(cases)} business case(s) parked in {_joined(names)}",
                first.since,
                f"event #{first.position} ({first.type}): {first.error[:160]} — fix the handler and retry, "
                "or skip, from the dashboard's parked cases "
                f"(`manage.py parked_case_retry {first.correlation_id}`, "
                f"`manage.py parked_case_skip {first.correlation_id} --position {first.position} --reason ...`)",
                also=tuple(subjects[1:]),
            )
        )
    return findings


def _halted_findings(
    halted: list[ProjectionStatus], oldest_unread: Mapping[str, datetime.datetime | None]
) -> list[Finding]:
    """One finding per event projections are halted on (one bad event halts every projection that
    reads it: one thing to fix, said once), about each of them; the error is in the next step, so
    a list row's cause stays one line."""
    by_event: dict[int | None, list[ProjectionStatus]] = {}
    for p in halted:
        by_event.setdefault(p.error_position, []).append(p)
    findings = []
    for position, ps in by_event.items():
        first, names = ps[0], [p.name for p in ps]
        since = [t for t in (oldest_unread.get(n) for n in names) if t is not None]
        subjects = [f"projection:{n}" for n in names]
        findings.append(
            Finding(
                Level.FAILING,
                subjects[0],
                f"projection {names[0]} is halted at event #{position} ({first.error_type})"
                if len(names) == 1
                else f"projections {_joined(names)} are halted at event #{position} ({first.error_type})",
                min(since, default=None),
                f"{first.error_message[:160]} — fix the handler and deploy, or skip the event from the "
                f"dashboard (`manage.py projection_skip --position {position} --reason ...`)",
                also=tuple(subjects[1:]),
            )
        )
    return findings


def _joined(names: Iterable[str]) -> str:
    """ "a", "a and b", "a, b and c"."""
    *rest, last = names
    return f"{', '.join(rest)} and {last}" if rest else last


def _failing_step(kind: str) -> str:
    if "Unavailable" in kind or re.search(r"\(5\d\d\)", kind) or "Timeout" in kind:
        return "the gateway is failing: pause the list until it recovers, then retry the parked items"
    return "a bug or bad data: read the item's error, fix and deploy, then retry the parked items"


def _log_findings(projections: list[ProjectionStatus], unregistered: dict[str, int]) -> list[Finding]:
    findings = []
    held = next((p for p in projections if p.held_back_seconds is not None), None)
    if held and held.held_back_seconds is not None:
        findings.append(
            Finding(
                Level.ATTENTION,
                "log",
                f"readers are held back by a write transaction open for {_seconds(held.held_back_seconds)} "
                f"(pid {held.held_back_pid}); events appended since are not visible yet",
                None,
                f"commit or end that transaction (SELECT pg_terminate_backend({held.held_back_pid}))",
            )
        )
    findings += [
        Finding(
            Level.ATTENTION,
            "log",
            f"{n} event(s) of unregistered type {t}, read by no projection",
            None,
            "install the app that declares the type, or register it",
        )
        for t, n in unregistered.items()
    ]
    return findings

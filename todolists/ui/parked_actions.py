"""The dashboard's buttons for a parked business case (thin admin views, POST only): Retry applies
the case's parked events again after a fix; Skip records one ParkedEventSkipped for the case with
the operator's reason, then applies what queued behind it (eventstore/parked_cases.py). Each goes
back to the dashboard with what happened in every projection, or why it was refused.

Retry needs todolists.operate_todoitem, as an item's retry does; a skip passes an event for good,
which the command line does with shell access, so it needs a superuser (as "Skip this event").
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest

from eventstore.parked_cases import CaseOutcome, ParkedCaseRefused, parked_case_retry, parked_case_skip
from eventstore.projections import projections_catch_up
from todolists.ui.dashboard_actions import OPERATE, _no_permission, _post_only, _refuse


def _report(request: HttpRequest, case: str, outcomes: list[CaseOutcome], done: str) -> None:
    projections_catch_up()  # the page after it shows its effect
    for o in outcomes:
        if o.still_parked:
            _refuse(request, f"case {case} is still parked in {o.projection}: {o.error}")
        else:
            messages.success(request, f"Case {case} {done} in {o.projection}: {o.applied} event(s) applied.")


@_post_only
def parked_case_retry_view(request: HttpRequest) -> None:
    if not request.user.has_perm(OPERATE):
        return _no_permission(request, OPERATE)
    case = request.POST.get("case", "")
    try:
        outcomes = parked_case_retry(correlation_id=case, actor=request.user.get_username())
    except ParkedCaseRefused as exc:
        return _refuse(request, str(exc))
    _report(request, case, outcomes, "retried")


@_post_only
def parked_case_skip_view(request: HttpRequest) -> None:
    if not request.user.is_superuser:
        return _refuse(
            request, "only a superuser may skip an event (as only a shell may run parked_case_skip)."
        )
    case = request.POST.get("case", "")
    shown = request.POST.get("position", "")
    if not shown.isdigit():
        return _refuse(request, f"skip of case {case}: the form names no event position; reload the page")
    try:
        outcomes = parked_case_skip(
            correlation_id=case,
            reason=request.POST.get("reason", ""),
            actor=request.user.get_username(),
            position=int(shown),
        )
    except ParkedCaseRefused as exc:
        return _refuse(request, str(exc))
    _report(request, case, outcomes, "skipped its parked event")

"""The dashboard's buttons (thin admin views, POST only): an error group's bulk action, pause and
resume a list, skip a poison event for every projection halted on it. Each asks for a reason,
calls one typed domain function that records events with the operator as actor, and goes back to
the dashboard with what happened, or with the reason it was refused.

Permissions as for the same action elsewhere: retry and park need todolists.operate_todoitem (so
do pause and resume), giving up needs payments.give_up_payment, and skipping an event, which the
command line does with shell access, needs a superuser.
"""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import reverse

from eventstore.poison import projections_skip_event
from eventstore.projections import SkipRefused, projections_catch_up
from eventstore.registry import NotRegistered
from todolists.pause import PauseRefused, todo_list_pause, todo_list_resume
from todolists.ui.error_groups import registry as group_actions
from todolists.ui.error_groups import todo_error_group_act

OPERATE = "todolists.operate_todoitem"
SHOWN = 10


def _post_only(view: Callable[[HttpRequest], None]) -> Callable[[HttpRequest], HttpResponse]:
    def wrapped(request: HttpRequest) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        view(request)
        return HttpResponseRedirect(reverse("admin:index"))

    wrapped.__name__ = view.__name__
    return wrapped


def _refuse(request: HttpRequest, text: str) -> None:
    messages.error(request, f"Refused: {text}")


def _no_permission(request: HttpRequest, permission: str) -> None:
    _refuse(request, f"{request.user.get_username()} lacks the permission {permission!r} for this action.")


@_post_only
def error_group_action_view(request: HttpRequest) -> None:
    list_name, kind = request.POST.get("list_name", ""), request.POST.get("kind", "")
    try:
        action = group_actions.get(request.POST.get("action", ""))
    except NotRegistered as exc:
        return _refuse(request, str(exc))
    if not request.user.has_perm(action.permission):
        return _no_permission(request, action.permission)
    try:
        result = todo_error_group_act(
            list_name=list_name,
            kind=kind,
            action=action.name,
            reason=request.POST.get("reason", ""),
            actor=request.user.get_username(),
        )
    except ValueError as exc:
        return _refuse(request, str(exc))
    projections_catch_up()  # the page after it shows its effect
    messages.success(
        request, f"{action.label} on {list_name}, {kind}: recorded for {len(result.recorded)} item(s)."
    )
    for refusal in result.refused[:SHOWN]:
        _refuse(request, refusal)
    if len(result.refused) > SHOWN:
        _refuse(request, f"... and {len(result.refused) - SHOWN} more.")


@_post_only
def list_pause_view(request: HttpRequest) -> None:
    if not request.user.has_perm(OPERATE):
        return _no_permission(request, OPERATE)
    list_name, pause = request.POST.get("list_name", ""), request.POST.get("action") == "pause"
    change = todo_list_pause if pause else todo_list_resume
    try:
        change(list_name=list_name, reason=request.POST.get("reason", ""), actor=request.user.get_username())
    except PauseRefused as exc:
        return _refuse(request, str(exc))
    projections_catch_up()
    if pause:
        messages.success(
            request, f"The list {list_name} is paused: no cluster works it until someone resumes it."
        )
    else:
        messages.success(request, f"The list {list_name} is resumed: the cluster works it from where it was.")


@_post_only
def event_skip_view(request: HttpRequest) -> None:
    if not request.user.is_superuser:
        return _refuse(
            request, "only a superuser may skip an event (as only a shell may run projection_skip)."
        )
    try:
        position = int(request.POST.get("position", ""))
    except ValueError:
        return _refuse(request, "the event's position must be a number.")
    try:
        results = projections_skip_event(
            position=position, reason=request.POST.get("reason", ""), actor=request.user.get_username()
        )
    except SkipRefused as exc:
        return _refuse(request, str(exc))
    for name, result in results.items():
        state = f"halted again: {result.error}" if result.error else "caught up"
        messages.success(request, f"Projection {name} skips event #{position}; {state}.")

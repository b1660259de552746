"""GET /health/ for load balancers and monitors: 200 when every projection runs and no list is
stuck, 503 with the reasons otherwise. Open to anyone (a probe carries no credentials); it names
lists and projections, never business data."""

from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from eventstore.projections import projection_status
from todolists.status import health_reasons, todo_lists_status


@never_cache
@require_GET
def health_view(request):
    projections = projection_status()
    lists = todo_lists_status(projections=projections)
    reasons = health_reasons(lists=lists, projections=projections)
    return JsonResponse(
        {
            "status": "unhealthy" if reasons else "ok",
            "reasons": reasons,
            "lists": {s.name: s.state for s in lists},
            "projections": {p.name: {"lag": p.lag, "halted": p.halted} for p in projections},
        },
        status=503 if reasons else 200,
    )

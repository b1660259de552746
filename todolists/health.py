"""GET /health/ for load balancers and monitors: 200 when every projection runs and no list is
stuck, 503 with the reasons otherwise. Open to anyone (a probe carries no credentials); it names
lists and projections, never business data."""

from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from todolists.status import system_health


@never_cache
@require_GET
def health_view(request):
    lists, projections, reasons = system_health()
    return JsonResponse(
        {
            "status": "unhealthy" if reasons else "ok",
            "reasons": reasons,
            "lists": {s.name: s.state for s in lists},
            "projections": {
                p.name: {
                    "lag": p.lag,
                    "halted": p.halted,
                    "skipped": p.skipped,
                    "held_back_seconds": p.held_back_seconds,
                }
                for p in projections
            },
        },
        status=503 if reasons else 200,
    )

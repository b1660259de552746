"""Two probes, for two audiences (README, "Operating"):

- GET /health/ is readiness, for load balancers: 200 while this process can serve and the
  database answers, 503 only when it cannot. A stuck list never takes the admin out of rotation.
- GET /health/process/ is the process verdict, for monitors: JSON with the level and every
  reason (todolists/ui/verdict.py), 503 when failing, 200 otherwise (attention included: read
  "status"); `?fail_on=attention` answers 503 at attention too.

Both are open to anyone (a probe carries no credentials); they name lists, projections and
workers, never business data.
"""

import logging

from django.db import DatabaseError, connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from todolists.ui.verdict import Level, process_verdict

logger = logging.getLogger(__name__)


@never_cache
@require_GET
def health_view(request: HttpRequest) -> JsonResponse:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as exc:
        logger.warning("readiness: the database does not answer: %s", exc)
        return JsonResponse({"status": "unavailable", "reason": "the database does not answer"}, status=503)
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def process_health_view(request: HttpRequest) -> JsonResponse:
    verdict = process_verdict()
    fail_on = Level.ATTENTION if request.GET.get("fail_on") == "attention" else Level.FAILING
    status = 503 if verdict.level.rank >= fail_on.rank else 200
    return JsonResponse(verdict.as_dict(), status=status)

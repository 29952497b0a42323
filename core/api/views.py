from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from core.health import current_health

# What /health says of each dependency (one enum in the schema, DependencyStatusEnum).
DEPENDENCY_STATUSES = ["ok", "slow", "down"]


def _state():
    return serializers.ChoiceField(choices=DEPENDENCY_STATUSES)


HEALTH = inline_serializer(
    "Health",
    {
        "status": serializers.ChoiceField(choices=["ok", "degraded", "down"]),
        "database": _state(),
        "broker": _state(),
        "cache": _state(),
        "latency_ms": serializers.DictField(child=serializers.IntegerField(allow_null=True)),
        "down": serializers.ListField(child=serializers.CharField(), required=False),
    },
)


class HealthView(APIView):
    """200 `ok`, or `degraded` naming what is slow or down while the API still works without it
    (Redis: cache, broker); 503 `down` when the database is down. Answers within about
    HEALTH_CHECK_TIMEOUT_S whatever is down."""

    permission_classes = [AllowAny]
    authentication_classes = []

    @extend_schema(responses={200: HEALTH, 503: HEALTH}, auth=[])
    def get(self, request):
        health = current_health()
        body = {"status": health.status, **health.checks, "latency_ms": health.latency_ms}
        if health.down:
            body["down"] = health.down
        return Response(body, status=503 if health.status == "down" else 200)

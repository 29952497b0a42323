from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from core.startup import check_broker, check_database


class HealthView(APIView):
    permission_classes = [AllowAny]
    authentication_classes = []

    @extend_schema(
        responses={
            200: inline_serializer(
                "Health",
                {
                    "status": serializers.CharField(),
                    "database": serializers.CharField(),
                    "broker": serializers.CharField(),
                },
            ),
            503: inline_serializer(
                "HealthDown",
                {
                    "status": serializers.CharField(),
                    "database": serializers.CharField(),
                    "broker": serializers.CharField(),
                    "down": serializers.ListField(child=serializers.CharField()),
                },
            ),
        },
        auth=[],
    )
    def get(self, request):
        statuses = [check_database(), check_broker()]
        body = {status.name: "ok" if status.ok else "down" for status in statuses}
        down = [status.name for status in statuses if not status.ok]
        body = {"status": "ok" if not down else "down", **body}
        if down:
            body["down"] = down
        return Response(body, status=503 if down else 200)

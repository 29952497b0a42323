import logging
import re
import time
import uuid

from django.conf import settings
from django.http import JsonResponse

from core.errors import error_body

request_logger = logging.getLogger("request")
REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestLogMiddleware:
    """Tags each request with an id and writes one JSON log line when it is answered."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        offered = request.headers.get("X-Request-ID", "")
        request.request_id = offered if REQUEST_ID_PATTERN.match(offered) else uuid.uuid4().hex
        started = time.perf_counter()
        response = self.get_response(request)
        duration_ms = round((time.perf_counter() - started) * 1000, 2)
        response["X-Request-ID"] = request.request_id
        user = getattr(request, "user", None)
        user_id = getattr(request, "authenticated_user_id", None)
        if user_id is None and user is not None and getattr(user, "is_authenticated", False):
            user_id = user.pk
        request_logger.info(
            "request",
            extra={
                "request_id": request.request_id,
                "user": str(user_id) if user_id is not None else None,
                "method": request.method,
                "path": request.path,
                "status": response.status_code,
                "duration_ms": duration_ms,
            },
        )
        return response


class BodySizeLimitMiddleware:
    """Refuses a body larger than MAX_REQUEST_BODY_BYTES from its Content-Length, before reading it."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        length = request.META.get("CONTENT_LENGTH") or "0"
        try:
            size = int(length)
        except ValueError:
            return JsonResponse(error_body("invalid", "Content-Length is not a number."), status=400)
        if size > settings.MAX_REQUEST_BODY_BYTES:
            return JsonResponse(
                error_body(
                    "too_large",
                    "The request body is too large.",
                    {"max_bytes": settings.MAX_REQUEST_BODY_BYTES},
                ),
                status=413,
            )
        return self.get_response(request)

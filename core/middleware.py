import logging
import re
import tempfile
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


# The environ key SpoolBodyWithoutLength sets on a body longer than MAX_REQUEST_BODY_BYTES.
BODY_OVER_LIMIT = "reelforge.body_over_limit"
SPOOL_READ_BYTES = 64 * 1024


class SpoolBodyWithoutLength:
    """WSGI middleware (config.wsgi) for a body sent without Content-Length (chunked, or HTTP/2):
    Django and DRF read no body at all without one. It reads such a body, never past
    MAX_REQUEST_BODY_BYTES + 1 bytes, into a spool (memory up to FILE_UPLOAD_MAX_MEMORY_SIZE, then
    FILE_UPLOAD_TEMP_DIR, as Django's ASGI handler does) and gives Django its length; a longer one is
    marked for BodySizeLimitMiddleware's 413, with nothing of it kept. A declared length is left to
    Django, which reads no further than it. Only a server whose `wsgi.input` ends with the body
    (`wsgi.input_terminated`: granian, config.asgi) is read without a length; others could block."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        if (
            environ.get("CONTENT_LENGTH")
            or not environ.get("wsgi.input_terminated")
            or environ["REQUEST_METHOD"] in ("GET", "HEAD", "OPTIONS")  # their bodies stay unread
        ):
            return self.app(environ, start_response)
        with tempfile.SpooledTemporaryFile(
            max_size=settings.FILE_UPLOAD_MAX_MEMORY_SIZE, dir=settings.FILE_UPLOAD_TEMP_DIR
        ) as spool:
            size = spool_at_most(environ["wsgi.input"], spool, settings.MAX_REQUEST_BODY_BYTES)
            if size is None:
                environ[BODY_OVER_LIMIT] = True
            else:
                environ["CONTENT_LENGTH"], environ["wsgi.input"] = str(size), spool
            return self.app(environ, start_response)


def spool_at_most(stream, spool, limit: int) -> int | None:
    """Copies `stream` to `spool` and returns its size, or None (at most `limit` bytes copied, the
    spool truncated) when it is longer than `limit`: at most `limit` + 1 bytes are read from it."""
    size = 0
    while chunk := stream.read(min(SPOOL_READ_BYTES, limit + 1 - size)):
        size += len(chunk)
        if size > limit:
            spool.truncate(0)
            return None
        spool.write(chunk)
    spool.seek(0)
    return size


def body_too_large() -> JsonResponse:
    return JsonResponse(
        error_body(
            "too_large", "The request body is too large.", {"max_bytes": settings.MAX_REQUEST_BODY_BYTES}
        ),
        status=413,
    )


class BodySizeLimitMiddleware:
    """Refuses a body larger than MAX_REQUEST_BODY_BYTES before the app reads it: from its
    Content-Length, or, sent without one, from SpoolBodyWithoutLength's mark."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.META.get(BODY_OVER_LIMIT):
            return body_too_large()
        length = request.META.get("CONTENT_LENGTH") or "0"
        try:
            size = int(length)
        except ValueError:
            return JsonResponse(error_body("invalid", "Content-Length is not a number."), status=400)
        if size > settings.MAX_REQUEST_BODY_BYTES:
            return body_too_large()
        return self.get_response(request)

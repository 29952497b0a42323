"""The one error format of the API: {"error": {"code", "message", "details"}}.

Every refusal raises `ApiError` (or a DRF exception, which is mapped here) and reaches the client
with a stable snake_case code. Unexpected exceptions become 500 `internal` without a traceback.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import ObjectDoesNotExist, RequestDataTooBig, SuspiciousOperation
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response

logger = logging.getLogger(__name__)


class ApiError(Exception):
    """A refusal with a status, a stable code and details for the client."""

    status_code = status.HTTP_400_BAD_REQUEST
    code = "invalid"
    message = "The request was refused."

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        status_code: int | None = None,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ):
        self.message = message or self.message
        self.code = code or self.code
        self.status_code = status_code or self.status_code
        self.details = details or {}
        self.headers = headers or {}
        super().__init__(self.message)


class AccountGone(ApiError):
    """The account a request was authenticated as was deleted while the request ran: the same
    answer as the next request with that token gets."""

    status_code = 401
    code = "not_authenticated"
    message = "This account no longer exists."


class NotFound(ApiError):
    status_code = 404
    code = "not_found"
    message = "Not found."


class Forbidden(ApiError):
    status_code = 403
    code = "forbidden"
    message = "You may not do this."


class Conflict(ApiError):
    status_code = 409
    code = "conflict"
    message = "This conflicts with the current state."


class RuleRefusal(ApiError):
    status_code = 422
    code = "refused"
    message = "The request breaks a rule."


class TooLarge(ApiError):
    status_code = 413
    code = "too_large"
    message = "The request body is too large."


class UnsupportedMedia(ApiError):
    status_code = 415
    code = "unsupported_media"
    message = "This media type is not supported."


class RateLimited(ApiError):
    status_code = 429
    code = "rate_limited"
    message = "Too many requests."

    def __init__(self, message: str | None = None, *, retry_after: int, code: str | None = None, **kwargs):
        headers = kwargs.pop("headers", {}) or {}
        headers["Retry-After"] = str(max(1, int(retry_after)))
        details = kwargs.pop("details", {}) or {}
        details.setdefault("retry_after", max(1, int(retry_after)))
        super().__init__(message, code=code, headers=headers, details=details, **kwargs)


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def _messages(detail: Any) -> Any:
    """DRF's nested ErrorDetail structure as plain strings."""
    if isinstance(detail, dict):
        return {str(key): _messages(value) for key, value in detail.items()}
    if isinstance(detail, list):
        return [_messages(item) for item in detail]
    return str(detail)


def _validation_details(detail: Any) -> dict[str, Any]:
    if isinstance(detail, dict):
        return _messages(detail)
    return {"non_field_errors": _messages(detail if isinstance(detail, list) else [detail])}


DRF_CODES: list[tuple[type[Exception], int, str]] = [
    (exceptions.ParseError, 400, "invalid"),
    (exceptions.NotAuthenticated, 401, "not_authenticated"),
    (exceptions.AuthenticationFailed, 401, "not_authenticated"),
    (exceptions.PermissionDenied, 403, "forbidden"),
    (exceptions.NotFound, 404, "not_found"),
    (exceptions.MethodNotAllowed, 405, "method_not_allowed"),
    (exceptions.NotAcceptable, 406, "not_acceptable"),
    (exceptions.UnsupportedMediaType, 415, "unsupported_media"),
]


# What a 503 for an unreachable database asks the client to wait: about as long as a restart takes.
DATABASE_RETRY_AFTER_S = 5


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """DRF's EXCEPTION_HANDLER: every exception raised in a view becomes the API's error body."""
    headers: dict[str, str] = {}
    if isinstance(exc, ApiError):
        return Response(
            error_body(exc.code, exc.message, exc.details), status=exc.status_code, headers=exc.headers
        )
    if isinstance(exc, exceptions.ValidationError):
        return Response(
            error_body("invalid", "The request is not valid.", _validation_details(exc.detail)),
            status=400,
        )
    if isinstance(exc, DjangoValidationError):
        details = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        return Response(error_body("invalid", "The request is not valid.", details), status=400)
    if isinstance(exc, exceptions.Throttled):
        wait = int(exc.wait or 1)
        headers["Retry-After"] = str(max(1, wait))
        return Response(
            error_body("rate_limited", "Too many requests; try again later.", {"retry_after": max(1, wait)}),
            status=429,
            headers=headers,
        )
    if isinstance(exc, Http404):
        return Response(error_body("not_found", "Not found."), status=404)
    if isinstance(exc, DjangoPermissionDenied):
        return Response(error_body("forbidden", "You may not do this."), status=403)
    if isinstance(exc, RequestDataTooBig):
        return Response(error_body("too_large", "The request body is too large."), status=413)
    if isinstance(exc, SuspiciousOperation):
        return Response(error_body("invalid", "The request is not valid."), status=400)
    for exc_class, status_code, code in DRF_CODES:
        if isinstance(exc, exc_class):
            if isinstance(exc, exceptions.MethodNotAllowed):
                headers["Allow"] = ", ".join(getattr(context.get("view"), "allowed_methods", []) or [])
            auth_header = _authenticate_header(context) if status_code == 401 else None
            if auth_header:
                headers["WWW-Authenticate"] = auth_header
            return Response(error_body(code, _plain_message(exc)), status=status_code, headers=headers)
    if isinstance(exc, exceptions.APIException):
        return Response(
            error_body(str(exc.default_code), _plain_message(exc)), status=exc.status_code, headers=headers
        )
    if isinstance(exc, DatabaseError | ObjectDoesNotExist) and _account_gone(context):
        gone = AccountGone()
        return Response(error_body(gone.code, gone.message), status=gone.status_code)
    if isinstance(exc, OperationalError | InterfaceError):
        # The database cannot be reached (restarting, failing over) or gave up on the statement for
        # now (a timeout, a serialization failure): nothing wrong with the request; ask again soon.
        logger.warning("database unavailable in %s: %s", context.get("view").__class__.__name__, exc)
        return Response(
            error_body("unavailable", "The service is briefly unavailable; try again shortly."),
            status=503,
            headers={"Retry-After": str(DATABASE_RETRY_AFTER_S)},
        )
    logger.exception("unhandled exception in %s", context.get("view").__class__.__name__)
    return Response(internal_error_body(exc), status=500)


def _account_gone(context: dict[str, Any]) -> bool:
    """Whether the request's user was deleted while it ran: its writes then fail in the database
    (a foreign key to the vanished row, an update of no row), and the cause is the deletion, not
    the request. Asked only after such a failure, so it costs nothing on the way to a 2xx."""
    user = getattr(context.get("request"), "_user", None)  # the authenticated one, never re-read
    if user is None or not user.is_authenticated:
        return False
    try:
        return not type(user)._default_manager.filter(pk=user.pk).exists()
    except DatabaseError:  # the database itself is failing, which is no deletion's doing
        return False


def _plain_message(exc: exceptions.APIException) -> str:
    detail = exc.detail
    if isinstance(detail, (list, dict)):
        return str(exc.default_detail)
    return str(detail)


def _authenticate_header(context: dict[str, Any]) -> str | None:
    view = context.get("view")
    request = context.get("request")
    if view is None or request is None:
        return None
    try:
        return view.get_authenticate_header(request)
    except Exception:  # noqa: BLE001 - a missing header must not turn a 401 into a 500
        return None


def internal_error_body(exc: Exception | None = None) -> dict[str, Any]:
    from django.conf import settings

    details: dict[str, Any] = {}
    if settings.DEBUG and exc is not None:
        import traceback

        details["traceback"] = traceback.format_exception(exc)
    return error_body("internal", "Something went wrong on our side.", details)


def _wants_json(request) -> bool:
    return not request.path.startswith("/admin/")


def json_bad_request(request, exception=None):
    if isinstance(exception, RequestDataTooBig):
        return JsonResponse(error_body("too_large", "The request body is too large."), status=413)
    return JsonResponse(error_body("invalid", "The request is not valid."), status=400)


def json_forbidden(request, exception=None):
    return JsonResponse(error_body("forbidden", "You may not do this."), status=403)


def json_not_found(request, exception=None):
    if not _wants_json(request):
        from django.views.defaults import page_not_found

        return page_not_found(request, exception)
    return JsonResponse(error_body("not_found", "Not found."), status=404)


def json_server_error(request):
    return JsonResponse(internal_error_body(), status=500)

"""The published schema documents every status an operation can answer, with the error body.

`ErrorDocumentingSchema` (DEFAULT_SCHEMA_CLASS) adds the refusals that follow from what a view
does, so a new view is covered without declaring anything:

- 400 `invalid`: it takes a body, query or header parameters (each is validated);
- 401 `not_authenticated`: it reads credentials (a missing, expired or bad token is refused);
- 403 `forbidden`: a permission class may refuse a signed-in user (staff only, roles);
- 404 `not_found`: its path names something (`{post_id}`, `{username}`);
- 413 `too_large` and 415 `unsupported_media`: it takes a body (size limits, parsers, content checks);
- 429 `rate_limited` with `Retry-After`: a throttle counts this method;
- 503 `unavailable` with `Retry-After`: every operation, when the database cannot be reached.

Refusals that only the view's rules know (a role checked by a service, 409 conflicts, 422 rule
refusals, 429 `quota_exceeded`) are declared on the view: `responses={200: X, **errors(403, 409)}`.
"""

from __future__ import annotations

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse
from rest_framework import permissions

from core.serializers import ErrorSerializer
from core.throttles import SAFE_METHODS, WriteRateThrottle

ERROR_STATUSES = {
    400: "`invalid` (details: field -> messages), or a specific code",
    401: "`not_authenticated`: no, an expired or a bad access token (or a specific code)",
    403: "`forbidden`, or a specific code: the caller may not do this",
    404: "`not_found`: no such thing, or the caller may not see it",
    409: "a conflict with the current state (specific code)",
    413: "`too_large`: the body or an uploaded file is too large",
    415: "`unsupported_media`: a content type or a file this endpoint does not take",
    422: "a rule refuses the request (specific code, details say which rule)",
    429: "`rate_limited` or a specific code; `Retry-After` says when to try again",
    503: "`unavailable`: the database cannot be reached for the moment; `Retry-After` says when to try again",
}

RETRY_AFTER_HEADER = {
    "Retry-After": {
        "schema": {"type": "integer", "minimum": 1},
        "description": "seconds to wait before trying again",
        "required": True,
    }
}

# Permission classes that refuse nobody who is signed in (their refusal is a 401, never a 403).
SIGNED_IN_IS_ENOUGH = (
    permissions.AllowAny,
    permissions.IsAuthenticated,
    permissions.IsAuthenticatedOrReadOnly,
)


def errors(*statuses: int) -> dict[int, OpenApiResponse]:
    """Error responses for `extend_schema(responses=...)`: the refusals only the view knows."""
    return {
        status: OpenApiResponse(ErrorSerializer, description=ERROR_STATUSES[status]) for status in statuses
    }


class ErrorDocumentingSchema(AutoSchema):
    """drf-spectacular's AutoSchema, plus the error responses derived from the view."""

    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        responses = operation["responses"]
        declared = set(responses)
        for status in self.derived_error_statuses(operation):
            responses.setdefault(str(status), self._error_response(status))
        # A declared 503 is the view's own (health's body); a derived one is the error body.
        retry_later = ["429"] + ([] if "503" in declared else ["503"])
        for status in retry_later:
            if status in responses:
                responses[status].setdefault("headers", {}).update(RETRY_AFTER_HEADER)
        operation["responses"] = dict(sorted(responses.items()))
        return operation

    def derived_error_statuses(self, operation: dict) -> set[int]:
        locations = {parameter["in"] for parameter in operation.get("parameters", [])}
        takes_body = "requestBody" in operation
        statuses = set()
        if takes_body or locations & {"query", "header"}:
            statuses.add(400)
        if self.view.get_authenticators():
            statuses.add(401)
        if any(not isinstance(p, SIGNED_IN_IS_ENOUGH) for p in self.view.get_permissions()):
            statuses.add(403)
        if "path" in locations:
            statuses.add(404)
        if takes_body:
            statuses.update((413, 415))
        if self._is_throttled():
            statuses.add(429)
        statuses.add(503)  # core.errors: a database that cannot be reached, whatever the view
        return statuses

    def _is_throttled(self) -> bool:
        return any(
            not (isinstance(throttle, WriteRateThrottle) and self.method in SAFE_METHODS)
            for throttle in self.view.get_throttles()
        )

    def _error_response(self, status: int) -> dict:
        # Errors are JSON whatever else the endpoint renders (a statement's CSV).
        return self._get_response_for_code(
            OpenApiResponse(ErrorSerializer, description=ERROR_STATUSES[status]),
            str(status),
            media_types=["application/json"],
        )

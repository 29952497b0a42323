"""OpenAPI pieces shared by the API: list parameters, the bearer-token scheme."""

from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme
from drf_spectacular.utils import OpenApiParameter

CURSOR_PAGE_PARAMETERS = [
    OpenApiParameter("cursor", str, description="the next_cursor of the previous page (opaque)"),
    OpenApiParameter("limit", int, description="page size: 1 to 50, default 10"),
]


class BearerTokenScheme(SimpleJWTScheme):
    """core.authentication's class is documented as simplejwt's (the same header and token)."""

    target_class = "core.authentication.JWTAuthentication"

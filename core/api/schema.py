"""OpenAPI pieces shared by every list endpoint."""

from drf_spectacular.utils import OpenApiParameter

CURSOR_PAGE_PARAMETERS = [
    OpenApiParameter("cursor", str, description="the next_cursor of the previous page (opaque)"),
    OpenApiParameter("limit", int, description="page size: 1 to 50, default 10"),
]

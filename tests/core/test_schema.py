import pytest
from django.urls import URLPattern, URLResolver, get_resolver

pytestmark = pytest.mark.django_db


def api_routes(patterns=None, prefix=""):
    """Every route under /api/v1/ in the URL configuration, with converters written as {name}."""
    import re

    patterns = get_resolver().url_patterns if patterns is None else patterns
    for entry in patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            yield from api_routes(entry.url_patterns, route)
        elif isinstance(entry, URLPattern) and route.startswith("api/v1/"):
            yield "/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route)


def test_schema_is_openapi_3_and_lists_every_endpoint(api):
    response = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    missing = sorted(set(api_routes()) - set(schema["paths"]))
    assert missing == [], f"endpoints missing from the OpenAPI schema: {missing}"


def test_schema_describes_request_and_response_shapes(api):
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    register = schema["paths"]["/api/v1/auth/register"]["post"]
    assert "requestBody" in register
    assert "201" in register["responses"]
    me = schema["paths"]["/api/v1/me"]["get"]
    assert me["responses"]["200"]["content"]["application/json"]["schema"]


def test_docs_page_is_served(api):
    response = api.get("/api/docs/")
    assert response.status_code == 200
    assert b"swagger" in response.content.lower()


# --- every status an operation can answer is documented (core.schema) ---------------------------

ERROR_REF = "#/components/schemas/Error"


def published_schema(api) -> dict:
    return api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()


def operations(schema: dict):
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            yield f"{method.upper()} {path}", operation


def missing_statuses(schema: dict) -> dict[str, list[str]]:
    """What each operation fails to document, by the rules every view follows."""
    missing = {}
    for label, operation in operations(schema):
        responses = operation["responses"]
        locations = {parameter["in"] for parameter in operation.get("parameters", [])}
        needed = set()
        if any(requirement for requirement in operation.get("security", [])):
            needed.add("401")  # a bearer token is read, so a bad one is refused
        if "path" in locations:
            needed.add("404")
        if "requestBody" in operation:
            needed |= {"400", "413", "415"}
        if locations & {"query", "header"}:
            needed.add("400")
        needed.add("503")  # the database may be unreachable for a moment
        if needed - set(responses):
            missing[label] = sorted(needed - set(responses))
    return missing


def test_every_operation_documents_the_refusals_it_can_answer(api):
    assert missing_statuses(published_schema(api)) == {}


def test_every_refusal_is_documented_with_the_error_body(api):
    schema = published_schema(api)
    assert set(schema["components"]["schemas"]["Error"]["properties"]) == {"error"}
    detail = schema["components"]["schemas"]["ErrorDetail"]
    assert set(detail["required"]) == {"code", "message", "details"}
    wrong = []
    for label, operation in operations(schema):
        for status, response in operation["responses"].items():
            if not status.startswith("4"):
                continue
            if response.get("content", {}).get("application/json", {}).get("schema") != {"$ref": ERROR_REF}:
                wrong.append(f"{label} {status}")
            if status == "429" and "Retry-After" not in response.get("headers", {}):
                wrong.append(f"{label} 429 without Retry-After")
        unavailable = operation["responses"]["503"]
        if label != "GET /api/v1/health" and "Retry-After" not in unavailable.get("headers", {}):
            wrong.append(f"{label} 503 without Retry-After")
    assert wrong == []


def test_statuses_follow_from_what_each_view_does(api):
    responses = {label: set(operation["responses"]) for label, operation in operations(published_schema(api))}
    # Reads no credentials: no 401; takes nothing: no 400.
    assert responses["GET /api/v1/health"] == {"200", "503"}
    # Counted writes are throttled, reads of the same view are not.
    assert "429" in responses["POST /api/v1/posts/{post_id}/comments"]
    assert "429" not in responses["GET /api/v1/posts/{post_id}/comments"]
    assert "429" in responses["POST /api/v1/auth/token"]
    # Staff-only views refuse signed-in users; a signed-in user may read their own profile.
    assert "403" in responses["GET /api/v1/protected-likenesses"]
    assert "403" not in responses["GET /api/v1/me"]
    # Rule refusals only the view knows are declared on it.
    assert {"403", "409"} <= responses["POST /api/v1/posts/{post_id}/publish"]
    assert {"403", "404", "409", "422", "429"} <= responses["POST /api/v1/generations"]


def test_a_view_that_declares_no_errors_gets_them_from_what_it_does():
    """A new view is covered without declarations (as social/api/exports.py was)."""
    from django.urls import path
    from drf_spectacular.generators import SchemaGenerator
    from rest_framework import serializers
    from rest_framework.permissions import IsAdminUser
    from rest_framework.response import Response
    from rest_framework.throttling import UserRateThrottle
    from rest_framework.views import APIView

    class Body(serializers.Serializer):
        name = serializers.CharField()

    class Throttled(UserRateThrottle):
        rate = "1/min"

    class NewView(APIView):
        permission_classes = [IsAdminUser]
        throttle_classes = [Throttled]

        def get_serializer(self, *args, **kwargs):
            return Body(*args, **kwargs)

        def put(self, request, thing_id: str):
            return Response({"name": "x"})

    schema = SchemaGenerator(patterns=[path("api/v1/things/<str:thing_id>", NewView.as_view())]).get_schema(
        request=None, public=True
    )
    responses = schema["paths"]["/api/v1/things/{thing_id}"]["put"]["responses"]
    assert set(responses) == {"200", "400", "401", "403", "404", "413", "415", "429", "503"}
    assert "Retry-After" in responses["429"]["headers"]


def test_the_schema_generates_without_warnings(tmp_path):
    """No colliding operation ids or enum names: a generated client gets one name for each."""
    from django.core.management import call_command

    call_command("spectacular", "--fail-on-warn", "--validate", "--file", str(tmp_path / "schema.yaml"))

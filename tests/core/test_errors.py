import json

import pytest

pytestmark = pytest.mark.django_db


def assert_error(response, status, code):
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert isinstance(body["error"]["details"], dict)
    return body["error"]


def test_malformed_json_is_400_invalid(api):
    response = api.post("/api/v1/auth/register", data="{not json", content_type="application/json")
    assert_error(response, 400, "invalid")


def test_wrong_content_type_is_415(api):
    response = api.post("/api/v1/auth/register", data="<a/>", content_type="application/xml")
    assert_error(response, 415, "unsupported_media")


def test_oversized_body_is_413_before_reading(api, settings):
    settings.MAX_REQUEST_BODY_BYTES = 1000
    response = api.post(
        "/api/v1/auth/register", data=json.dumps({"username": "x" * 2000}), content_type="application/json"
    )
    assert_error(response, 413, "too_large")


def test_json_body_over_memory_limit_is_413(api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 500
    response = api.post(
        "/api/v1/auth/register", data=json.dumps({"username": "x" * 2000}), content_type="application/json"
    )
    assert_error(response, 413, "too_large")


def test_unknown_field_is_400_naming_it(api):
    response = api.post(
        "/api/v1/auth/register",
        {"username": "newbie", "password": "a-Strong-passw0rd!", "birth_date": "1990-01-01", "admin": True},
        format="json",
    )
    error = assert_error(response, 400, "invalid")
    assert error["details"] == {"admin": ["Unknown field."]}


def test_wrongly_typed_field_is_400(api):
    response = api.post(
        "/api/v1/auth/register",
        {"username": ["a"], "password": 5, "birth_date": "yesterday"},
        format="json",
    )
    error = assert_error(response, 400, "invalid")
    assert "birth_date" in error["details"]


def test_json_array_body_is_400_not_500(api):
    response = api.post("/api/v1/auth/register", [1, 2, 3], format="json")
    assert_error(response, 400, "invalid")


def test_unknown_url_is_json_404(api):
    assert_error(api.get("/api/v1/no-such-thing"), 404, "not_found")


def test_unknown_url_is_json_404_for_a_post_without_csrf_cookie_too():
    from rest_framework.test import APIClient

    client = APIClient(enforce_csrf_checks=True)
    assert_error(client.post("/api/v1/auth/login", {}, format="json"), 404, "not_found")


def test_unknown_url_is_json_404_in_debug_too(api, settings):
    settings.DEBUG = True
    assert_error(api.get("/api/v1/generations/"), 404, "not_found")


def test_wrong_method_is_405(api):
    assert_error(api.delete("/api/v1/health"), 405, "method_not_allowed")


def test_missing_token_is_401(api):
    response = api.get("/api/v1/me")
    assert_error(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_garbage_token_is_401(api):
    api.credentials(HTTP_AUTHORIZATION="Bearer not-a-token")
    assert_error(api.get("/api/v1/me"), 401, "not_authenticated")


@pytest.mark.urls("tests.core.urls_with_failure")
def test_unexpected_exception_is_500_internal_without_traceback(api, settings):
    settings.DEBUG = False
    error = assert_error(api.get("/api/v1/test-failure"), 500, "internal")
    assert "traceback" not in error["details"]
    assert "boom" not in json.dumps(error)


@pytest.mark.urls("tests.core.urls_with_failure")
def test_unexpected_exception_shows_traceback_in_debug(api, settings):
    settings.DEBUG = True
    error = assert_error(api.get("/api/v1/test-failure"), 500, "internal")
    assert any("boom" in line for line in error["details"]["traceback"])


def test_throttled_auth_is_429_with_retry_after(api, settings):
    from social.api.throttles import AuthRateThrottle

    rates = {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "auth": "3/min"}
    original = AuthRateThrottle.THROTTLE_RATES
    AuthRateThrottle.THROTTLE_RATES = rates
    try:
        statuses = [
            api.post("/api/v1/auth/token", {"username": "x", "password": "y"}, format="json").status_code
            for _ in range(4)
        ]
        response = api.post("/api/v1/auth/token", {"username": "x", "password": "y"}, format="json")
    finally:
        AuthRateThrottle.THROTTLE_RATES = original
    assert statuses[:3] == [401, 401, 401]
    assert_error(response, 429, "rate_limited")
    assert int(response["Retry-After"]) >= 1


def test_every_response_has_a_request_id(api):
    response = api.get("/api/v1/health", HTTP_X_REQUEST_ID="abc-123")
    assert response["X-Request-ID"] == "abc-123"
    assert len(api.get("/api/v1/health")["X-Request-ID"]) == 32


def test_a_number_where_text_is_expected_is_400(auth_client):
    response = auth_client.post(
        "/api/v1/generations", {"prompt": 5, "duration_s": 2, "aspect_ratio": "9:16"}, format="json"
    )
    error = assert_error(response, 400, "invalid")
    assert error["details"]["prompt"] == ["Must be a string."]


@pytest.mark.django_db(transaction=True)
def test_a_request_whose_database_connection_was_cut_is_503_unavailable_with_retry_after(make_user):
    import psycopg
    from django.db import connection

    from tests.conftest import client_for

    client = client_for(make_user("cut"))
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (backend,) = cursor.fetchone()
    # As a database restart or failover does to every open session.
    with psycopg.connect(**connection.get_connection_params(), autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [backend])
    try:
        response = client.get("/api/v1/me")
        assert_error(response, 503, "unavailable")
        assert response["Retry-After"] == "5"
    finally:
        connection.close()
    assert client.get("/api/v1/me").status_code == 200

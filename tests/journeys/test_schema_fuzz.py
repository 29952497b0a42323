"""Schemathesis against our own OpenAPI schema: generated requests never cause a server error,
and every refusal uses the error format of API.md."""

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from rest_framework_simplejwt.tokens import AccessToken

pytestmark = pytest.mark.django_db

EXAMPLES_PER_OPERATION = 6


@pytest.fixture
def wsgi_without_connection_resets(settings):
    settings.ALLOWED_HOSTS = ["testserver", "localhost"]
    # As Django's test client does: a request must not close the test's database connection.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def test_generated_requests_never_cause_a_server_error(wsgi_without_connection_resets, make_user):
    from config.wsgi import application

    headers = {"Authorization": f"Bearer {AccessToken.for_user(make_user('fuzzer'))}"}
    schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def exercise(case):
            response = case.call(headers=headers)
            if response.status_code >= 500:
                raise AssertionError(f"{response.status_code}: {response.text[:300]}")
            if response.status_code >= 400:
                body = response.json()
                assert set(body) == {"error"} and body["error"]["code"], body

        try:
            exercise()
        except Exception as exc:  # noqa: BLE001 - collect every failing operation, then report them all
            failures.append(f"{operation.method.upper()} {operation.path}: {exc!s:.400}")
    assert operations > 5
    assert failures == []

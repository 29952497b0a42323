import socket
import time

import pytest

pytestmark = pytest.mark.django_db

# HEALTH_CHECK_TIMEOUT_S is 1 s: whatever is down, the answer comes within 2 s (a paused Redis held
# it for 10 s before, and then reported it ok).
ANSWER_WITHIN_S = 2


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def timed_health(api):
    started = time.monotonic()
    response = api.get("/api/v1/health")
    return response, time.monotonic() - started


def test_health_reports_database_broker_and_cache_ok(api):
    response = api.get("/api/v1/health")
    assert response.status_code == 200
    body = response.json()
    assert {key: body[key] for key in ("status", "database", "broker", "cache")} == {
        "status": "ok",
        "database": "ok",
        "broker": "ok",
        "cache": "ok",
    }
    assert "down" not in body
    assert all(isinstance(body["latency_ms"][name], int) for name in ("database", "broker", "cache"))


def test_health_is_degraded_naming_the_broker_when_it_is_down(api, settings):
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{closed_port()}/0"
    response, seconds = timed_health(api)
    assert response.status_code == 200  # the API works; new generations wait for the broker
    body = response.json()
    assert body["status"] == "degraded"
    assert body["broker"] == "down" and body["database"] == "ok" and body["cache"] == "ok"
    assert body["down"] == ["broker"]
    assert seconds < ANSWER_WITHIN_S


def test_health_is_down_naming_the_database_when_it_is_down(api, monkeypatch):
    from django.db import connections

    # The check opens a connection of its own in its own thread, from these settings.
    monkeypatch.setitem(connections.settings["default"], "HOST", "127.0.0.1")
    monkeypatch.setitem(connections.settings["default"], "PORT", closed_port())
    response, seconds = timed_health(api)
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "down" and body["database"] == "down"
    assert body["down"] == ["database"]
    assert body["broker"] == "ok" and body["cache"] == "ok"
    assert seconds < ANSWER_WITHIN_S


def test_health_names_a_paused_redis_within_two_seconds(api, settings, redis_process):
    settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": redis_process.url}}
    settings.CELERY_BROKER_URL = redis_process.url
    redis_process.pause()
    response, seconds = timed_health(api)
    assert seconds < ANSWER_WITHIN_S
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded" and body["database"] == "ok"
    assert body["cache"] == "down" and body["broker"] == "down"
    assert body["down"] == ["broker", "cache"]
    assert timed_health(api)[1] < ANSWER_WITHIN_S  # and again, while the first checks may still wait

    redis_process.resume()
    deadline = time.monotonic() + 5
    while (body := api.get("/api/v1/health").json())["status"] != "ok":
        assert time.monotonic() < deadline, body
        time.sleep(0.1)


def test_check_services_command_passes_against_real_services():
    from django.core.management import call_command

    call_command("check_services")

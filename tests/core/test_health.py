import pytest

pytestmark = pytest.mark.django_db


def test_health_reports_database_and_broker_ok(api):
    response = api.get("/api/v1/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "broker": "ok"}


def test_health_names_the_broker_when_it_is_down(api, settings):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{closed_port}/0"
    settings.HEALTH_CHECK_TIMEOUT_S = 1
    response = api.get("/api/v1/health")
    assert response.status_code == 503
    body = response.json()
    assert body["broker"] == "down" and body["database"] == "ok"
    assert body["down"] == ["broker"]


def test_health_names_the_database_when_it_is_down(api, monkeypatch):
    from core import startup
    from core.api import views

    monkeypatch.setattr(views, "check_database", lambda: startup.ServiceStatus("database", False, "gone"))
    response = api.get("/api/v1/health")
    assert response.status_code == 503
    assert response.json()["database"] == "down"
    assert response.json()["down"] == ["database"]


def test_check_services_command_passes_against_real_services():
    from django.core.management import call_command

    call_command("check_services")

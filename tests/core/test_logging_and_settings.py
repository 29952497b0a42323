import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.logging import JsonFormatter

BASE_DIR = Path(__file__).resolve().parents[2]


@pytest.mark.django_db
def test_one_json_log_line_per_request(auth_client, user, caplog):
    caplog.set_level(logging.INFO, logger="request")
    logger = logging.getLogger("request")
    logger.addHandler(caplog.handler)
    try:
        auth_client.get("/api/v1/me", HTTP_X_REQUEST_ID="req-1")
    finally:
        logger.removeHandler(caplog.handler)
    records = [record for record in caplog.records if record.name == "request"]
    assert len(records) == 1
    line = json.loads(JsonFormatter().format(records[0]))
    assert line["request_id"] == "req-1"
    assert line["user"] == str(user.pk)
    assert line["method"] == "GET" and line["path"] == "/api/v1/me" and line["status"] == 200
    assert line["duration_ms"] >= 0


def import_settings(env_overrides: dict[str, str | None]) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items()}
    env["DATA_DIR"] = "/nonexistent-data-dir"
    for key, value in env_overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import django, os; os.environ['DJANGO_SETTINGS_MODULE']='config.settings'; django.setup()",
        ],
        env=env,
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
    )


def test_secret_key_is_required_when_debug_is_off():
    result = import_settings({"DEBUG": "0", "SECRET_KEY": None})
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_missing_database_url_is_named():
    result = import_settings({"DATABASE_URL": None})
    assert result.returncode != 0
    assert "DATABASE_URL" in result.stderr


def test_debug_is_off_unless_asked():
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from django.conf import settings; print(settings.DEBUG, settings.ALLOWED_HOSTS)",
        ],
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DEBUG": "",
            "DATA_DIR": "/nonexistent",
        },
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
    )
    assert result.stdout.strip() == "False []", result.stderr


def test_unreachable_database_is_named_by_check_services():
    result = subprocess.run(
        [sys.executable, "manage.py", "check_services"],
        env={
            **os.environ,
            "DATA_DIR": "/nonexistent",
            "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
            "DB_CONNECT_TIMEOUT": "1",
        },
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "DATABASE_URL" in result.stderr


def test_wsgi_server_refuses_to_start_without_its_broker():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    result = subprocess.run(
        [sys.executable, "-c", "import config.wsgi"],
        env={
            **os.environ,
            "DATA_DIR": "/nonexistent",
            "REDIS_URL": f"redis://127.0.0.1:{closed_port}/0",
            "CELERY_BROKER_URL": f"redis://127.0.0.1:{closed_port}/0",
            "HEALTH_CHECK_TIMEOUT_S": "1",
            "STARTUP_CHECKS": "1",
        },
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "Cannot start" in result.stderr and "CELERY_BROKER_URL" in result.stderr


def test_startup_checks_pass_inside_a_running_event_loop():
    """As when uvicorn with several workers imports the app inside its loop."""
    code = (
        "import asyncio, django, os\n"
        "os.environ['DJANGO_SETTINGS_MODULE'] = 'config.settings'\n"
        "django.setup()\n"
        "from core.startup import require_services\n"
        "async def main():\n"
        "    require_services()\n"
        "asyncio.run(main())\n"
        "print('started')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "DATA_DIR": "/nonexistent", "STARTUP_CHECKS": "1"},
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "started"


def test_make_run_with_external_services_writes_its_env_file_in_a_fresh_checkout(tmp_path):
    """With DATABASE_URL and REDIS_URL set no embedded service creates the data folder first."""
    from config.services import write_dev_env

    data_dir = tmp_path / "fresh" / ".data"
    path = write_dev_env(data_dir, {"DATABASE_URL": "postgresql://db/app", "DATA_DIR": str(data_dir)})
    assert path.read_text().splitlines()[1:] == ["DATABASE_URL=postgresql://db/app", f"DATA_DIR={data_dir}"]
    assert oct(path.stat().st_mode & 0o777) == "0o600"

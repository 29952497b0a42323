"""Shared by the benchmark scripts: Django on the embedded services (or the configured ones), migrated.

Without DATABASE_URL the embedded PostgreSQL and Redis start in DATA_DIR (each script names its own
default folder) and stop when the script's ExitStack closes; a running `make run`'s `dev.env` in
DATA_DIR is used when there is one.
"""

from __future__ import annotations

import os
import sys
from contextlib import ExitStack
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

PASSED_ON = ("DATABASE_URL", "REDIS_URL", "DEBUG", "SECRET_KEY", "DATA_DIR")


def start_django(stack: ExitStack, default_data_dir: str, **settings_env: str) -> dict[str, str]:
    """Starts what is not configured, sets up Django and migrates; returns the environment a
    server started beside the script needs (database and broker URLs, secret key, data folder)."""
    if "DATA_DIR" not in os.environ:
        os.environ["DATA_DIR"] = default_data_dir
    from config.env import load_dev_env

    load_dev_env()
    if not os.environ.get("DATABASE_URL") or not os.environ.get("REDIS_URL"):
        from config.services import services

        env = stack.enter_context(services(Path(os.environ["DATA_DIR"]), development=True))
        os.environ.update({name: value for name, value in env.items() if name in PASSED_ON})
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ["LOG_LEVEL"] = "WARNING"
    for name, value in settings_env.items():
        os.environ.setdefault(name, value)
    import django

    django.setup()
    from django.conf import settings

    settings.DEBUG = False  # no query log: it would grow with every statement a benchmark runs
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return {name: os.environ[name] for name in PASSED_ON if os.environ.get(name)}


def setup_django_without_services(default_data_dir: str) -> None:
    """Django for a script that touches neither the database nor the broker (the models and
    their files only): placeholder URLs that nothing connects to, DEBUG for a secret key."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("DEBUG", "1")
    os.environ.setdefault("DATABASE_URL", "postgresql://unused@127.0.0.1/unused")
    os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:1/0")
    os.environ.setdefault("DATA_DIR", default_data_dir)
    import django

    django.setup()

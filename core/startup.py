"""Checks that the services the app needs answer, with a message that names what is wrong."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.db import OperationalError, connection


@dataclass
class ServiceStatus:
    name: str
    ok: bool
    detail: str = ""


def check_database() -> ServiceStatus:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except OperationalError as exc:
        return ServiceStatus("database", False, f"cannot reach the database at DATABASE_URL: {exc}".strip())
    except Exception as exc:  # noqa: BLE001 - any failure means the database is down for us
        return ServiceStatus("database", False, f"database error: {exc}")
    return ServiceStatus("database", True)


def check_vector_extension() -> ServiceStatus:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")
            available = cursor.fetchone() is not None
    except Exception as exc:  # noqa: BLE001
        return ServiceStatus("vector", False, f"cannot check for the vector extension: {exc}")
    if not available:
        return ServiceStatus(
            "vector",
            False,
            "the database server lacks the pgvector extension (`vector`): install pgvector on the "
            "PostgreSQL server (e.g. the postgresql-NN-pgvector package) and run migrations again.",
        )
    return ServiceStatus("vector", True)


def check_broker(timeout: float | None = None, *, max_retries: int = 1) -> ServiceStatus:
    from kombu import Connection

    timeout = timeout if timeout is not None else settings.HEALTH_CHECK_TIMEOUT_S
    # Without read timeouts a paused broker holds the check for as long as the kernel keeps the socket.
    if settings.CELERY_BROKER_URL.startswith("redis"):
        transport_options = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
    else:
        transport_options = {"read_timeout": timeout, "write_timeout": timeout}
    try:
        with Connection(
            settings.CELERY_BROKER_URL, connect_timeout=timeout, transport_options=transport_options
        ) as conn:
            conn.ensure_connection(max_retries=max_retries, timeout=timeout)
            if conn.transport_cls in ("redis", "rediss") or settings.CELERY_BROKER_URL.startswith("redis"):
                conn.default_channel.client.ping()
    except Exception as exc:  # noqa: BLE001
        return ServiceStatus("broker", False, f"cannot reach the broker at CELERY_BROKER_URL: {exc}")
    return ServiceStatus("broker", True)


def check_cache(timeout: float | None = None) -> ServiceStatus:
    from django.core.cache import caches

    timeout = timeout if timeout is not None else settings.HEALTH_CHECK_TIMEOUT_S
    ping = getattr(caches["default"], "ping", None)
    if ping is None:  # a cache in the process (tests, development) is always there
        return ServiceStatus("cache", True)
    try:
        ping(timeout_s=timeout)
    except Exception as exc:  # noqa: BLE001
        return ServiceStatus("cache", False, f"cannot reach the cache at REDIS_URL: {exc}")
    return ServiceStatus("cache", True)


def verify_services() -> list[ServiceStatus]:
    return [check_database(), check_vector_extension(), check_broker()]


def require_services() -> None:
    """Stops a server or worker at startup, naming every service that does not answer.

    Skipped when STARTUP_CHECKS is off (e.g. to build images without services).
    """
    if not getattr(settings, "STARTUP_CHECKS", True):
        return
    from concurrent.futures import ThreadPoolExecutor

    from django.core.exceptions import ImproperlyConfigured

    def check_in_own_thread() -> list[ServiceStatus]:
        # ASGI servers may import the app inside a running event loop, where Django refuses
        # database calls; a thread of our own has none, and closes its connection when done.
        from django.db import connections

        try:
            return verify_services()
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=1) as pool:
        statuses = pool.submit(check_in_own_thread).result()
    failed = [status.detail for status in statuses if not status.ok]
    if failed:
        raise ImproperlyConfigured("Cannot start: " + "; ".join(failed))


def freeze_loaded_objects() -> None:
    """Moves everything loaded so far (Django, the app, their libraries: over 100k objects) out of
    the garbage collector's reach. They live as long as the server process, and a full collection
    that walks them stalled a request for over 100 ms on the development machine; after this it
    walks what requests left behind."""
    import gc

    gc.collect()
    gc.freeze()

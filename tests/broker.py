"""Pointing the Celery app at another broker (a closed port: a broker that is down)."""

import contextlib
import socket

from config.celery import app


def _reset_producers() -> None:
    """Forgets the app's producer pools, so the next send connects to the configured broker (the
    pools stay open: kombu's registry hands the same pool out again for the same broker)."""
    app._pool = None
    app.amqp._producer_pool = None


@contextlib.contextmanager
def broker_at(url: str):
    """The Celery app sending to `url` instead of the test broker."""
    original = app.conf.broker_url
    app.conf.broker_url = url
    _reset_producers()
    try:
        yield
    finally:
        app.conf.broker_url = original
        _reset_producers()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]

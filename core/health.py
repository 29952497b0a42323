"""The state of the services the API depends on, for `GET /health`, known within
HEALTH_CHECK_TIMEOUT_S whatever is down.

The checks run concurrently, each in a thread of its own with its own timeout, and the caller waits
for them until the deadline: a check with no answer by then is `down`. A check still running from an
earlier call is waited on rather than started again, so a dependency that hangs holds one thread,
however often the load balancer asks.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, wait
from dataclasses import dataclass

from django.conf import settings

from core import startup

logger = logging.getLogger(__name__)

OK, SLOW, DOWN = "ok", "slow", "down"

# Without the database no endpoint works. Without Redis the API still serves (the cache answers as
# misses, websocket events are dropped) but new generations wait for the broker: degraded.
REQUIRED = ("database",)


@dataclass(frozen=True)
class Health:
    status: str  # ok | degraded | down
    checks: dict[str, str]  # dependency -> ok | slow | down
    latency_ms: dict[str, int | None]  # None: no answer before the deadline

    @property
    def down(self) -> list[str]:
        return [name for name, state in self.checks.items() if state == DOWN]


def _check_database(timeout: float) -> startup.ServiceStatus:
    from django.db import connections

    try:
        return startup.check_database()
    finally:
        connections.close_all()  # this thread's own connection, which nothing else would close


def _checks() -> dict[str, Callable[[float], startup.ServiceStatus]]:
    return {
        "database": _check_database,
        "broker": lambda timeout: startup.check_broker(timeout, max_retries=0),
        "cache": startup.check_cache,
    }


@dataclass(frozen=True)
class _Answer:
    status: startup.ServiceStatus
    seconds: float


_running: dict[str, Future] = {}
_running_lock = threading.Lock()


def _start(name: str, check: Callable[[float], startup.ServiceStatus], timeout: float) -> Future:
    with _running_lock:
        future = _running.get(name)
        if future is not None and not future.done():
            return future
        future = _running[name] = Future()
    threading.Thread(
        target=_run, args=(future, name, check, timeout), name=f"health-{name}", daemon=True
    ).start()
    return future


def _run(future: Future, name: str, check, timeout: float) -> None:
    started = time.monotonic()
    try:
        status = check(timeout)
    except Exception as exc:  # noqa: BLE001 - a check that breaks reports its dependency down
        status = startup.ServiceStatus(name, False, f"{type(exc).__name__}: {exc}")
    future.set_result(_Answer(status, time.monotonic() - started))


def _state(answer: _Answer | None) -> str:
    if answer is None or not answer.status.ok:
        return DOWN
    return SLOW if answer.seconds * 1000 > settings.HEALTH_SLOW_MS else OK


def current_health() -> Health:
    timeout = settings.HEALTH_CHECK_TIMEOUT_S
    futures = {name: _start(name, check, timeout) for name, check in _checks().items()}
    wait(futures.values(), timeout=timeout)
    answers = {name: future.result() if future.done() else None for name, future in futures.items()}
    checks = {name: _state(answer) for name, answer in answers.items()}
    latency_ms = {
        name: None if answer is None else round(answer.seconds * 1000) for name, answer in answers.items()
    }
    if any(checks[name] == DOWN for name in REQUIRED):
        status = "down"
    else:
        status = "degraded" if any(state != OK for state in checks.values()) else "ok"
    if status != "ok":
        details = {
            name: (answer.status.detail or f"answered in {latency_ms[name]} ms")
            if answer
            else f"no answer within {timeout:g} s"
            for name, answer in answers.items()
            if checks[name] != OK
        }
        logger.warning("health: %s %s", status, details, extra={"health": checks, "latency_ms": latency_ms})
    return Health(status=status, checks=checks, latency_ms=latency_ms)

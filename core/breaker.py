"""A circuit breaker for the dependencies the app can do without for a while: the cache and the
websocket channel layer (both Redis).

closed: calls go through. A call that fails to reach the dependency (an error or a timeout) opens
it. open: for `reset_after_s` every call is refused at once, without touching the network, and the
caller falls back (a cache miss, a dropped websocket event). half-open: then one call goes through as
a probe while the others are still refused; its success closes the breaker, its failure opens it
again for another `reset_after_s`.

A breaker is shared by the threads of a process (one per dependency name) and its state lives in
that process. That is the one place it can live: it is this process's view of the dependency's
health, which cannot be kept in the very Redis it watches, and every process learns it on its own
within one short timeout, so there is nothing to share or invalidate between processes.
"""

from __future__ import annotations

import logging
import threading
import time
from urllib.parse import urlsplit

import redis

logger = logging.getLogger(__name__)

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"

# What "the dependency did not answer" looks like: refused or reset connections, timeouts (socket and
# asyncio ones are OSError), and redis-py's wrappers of them. Other errors are bugs, not outages.
UNAVAILABLE_ERRORS = (OSError, redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


class CircuitBreaker:
    def __init__(self, name: str, *, reset_after_s: float, clock=time.monotonic):
        self.name = name
        self.reset_after_s = reset_after_s
        self._clock = clock
        self._lock = threading.Lock()
        self.state = CLOSED
        self._retry_at = 0.0
        self._down_since = 0.0
        self._refused = 0

    def allow(self) -> bool:
        """Whether this call may use the dependency; False means: fall back without trying."""
        if self.state == CLOSED:  # the hot path (every cache call) takes no lock
            return True
        with self._lock:
            if self.state == CLOSED:
                return True
            now = self._clock()
            if now < self._retry_at:
                self._refused += 1
                return False
            # Open past its time, or half-open with a probe that never reported (its thread died):
            # this call is the probe, and the others wait for another period.
            self.state = HALF_OPEN
            self._retry_at = now + self.reset_after_s
            return True

    def record_success(self) -> None:
        if self.state == CLOSED:
            return
        with self._lock:
            if self.state == CLOSED:
                return
            self.state = CLOSED
            down_for, refused, self._refused = self._clock() - self._down_since, self._refused, 0
        logger.info(
            "%s is back after %.1f s; %d calls went without it meanwhile",
            self.name,
            down_for,
            refused,
            extra={"dependency": self.name, "breaker": CLOSED, "refused_calls": refused},
        )

    def record_failure(self, exc: BaseException) -> None:
        with self._lock:
            if self.state == OPEN:  # a concurrent call already opened it (and logged it)
                return
            now = self._clock()
            first = self.state == CLOSED
            if first:
                self._down_since = now
            self.state = OPEN
            self._retry_at = now + self.reset_after_s
            refused, self._refused = self._refused, 0
        # One line per period, never a traceback per call: the cause is all an operator needs.
        cause = f"{type(exc).__name__}: {exc}".rstrip(": ")
        if first:
            message = "%s is unavailable (%s); calls go without it for %.1f s"
            args = (self.name, cause, self.reset_after_s)
        else:
            message = "%s is still unavailable (%s); %d calls went without it; next try in %.1f s"
            args = (self.name, cause, refused, self.reset_after_s)
        logger.warning(
            message, *args, extra={"dependency": self.name, "breaker": OPEN, "refused_calls": refused}
        )


_breakers: dict[str, CircuitBreaker] = {}
_breakers_lock = threading.Lock()


def breaker_for(name: str, *, reset_after_s: float) -> CircuitBreaker:
    """The process's breaker for the dependency `name` (the first caller's `reset_after_s` holds)."""
    found = _breakers.get(name)
    if found is None:
        with _breakers_lock:
            found = _breakers.setdefault(name, CircuitBreaker(name, reset_after_s=reset_after_s))
    return found


def describe_url(url: str) -> str:
    """A server's URL without its credentials, fit for names and logs."""
    parts = urlsplit(url)
    host = parts.hostname or parts.path
    port = f":{parts.port}" if parts.port else ""
    path = parts.path if parts.hostname else ""
    return f"{parts.scheme}://{host}{port}{path}"

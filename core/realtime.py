"""Pushing events to a user's open websockets, only once the write that caused them commits.

A push is a best-effort side effect: the event is also stored (a notification row, a job's state)
and a client that missed it reads it back. So a channel layer that is down or slow never fails the
request or the job that pushes: each send is bounded by REALTIME_SEND_TIMEOUT_S and goes through a
circuit breaker (core.breaker, BREAKER_RESET_S); an event that cannot be sent is dropped, and the
breaker logs one line per outage period rather than a traceback per event.
"""

import asyncio
import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction

from core.breaker import UNAVAILABLE_ERRORS, CircuitBreaker, breaker_for, describe_url

logger = logging.getLogger(__name__)


def user_group(user_id: int | str) -> str:
    return f"user.{user_id}"


def _layer_breaker(layer) -> CircuitBreaker:
    hosts = getattr(layer, "hosts", None) or []
    where = [describe_url(host["address"]) if "address" in host else str(host.get("host")) for host in hosts]
    name = f"channel layer {type(layer).__name__}" + (" at " + ", ".join(where) if where else "")
    return breaker_for(name, reset_after_s=settings.BREAKER_RESET_S)


async def _group_send_within(layer, group: str, message: dict, timeout_s: float) -> None:
    await asyncio.wait_for(layer.group_send(group, message), timeout_s)


def send_now(user_id: int | str, payload: dict[str, Any]) -> bool:
    """Send `payload` to the user's websockets now; False when it was dropped. Never raises."""
    return _send_to_user(user_id, {"type": "user.event", "payload": payload})


def _send_to_user(user_id: int | str, message: dict[str, Any]) -> bool:
    layer = get_channel_layer()
    if layer is None:
        return False
    breaker = _layer_breaker(layer)
    if not breaker.allow():
        return False
    try:
        async_to_sync(_group_send_within)(
            layer, user_group(user_id), message, settings.REALTIME_SEND_TIMEOUT_S
        )
    except UNAVAILABLE_ERRORS as exc:
        breaker.record_failure(exc)
        return False
    except Exception:  # noqa: BLE001 - a bug in an event must not fail the write that caused it
        logger.exception("a websocket event could not be sent", extra={"event_type": message.get("type")})
        return False
    breaker.record_success()
    return True


def push_to_user(user_id: int | str, payload: dict[str, Any]) -> None:
    """Send `payload` to the user's websockets after the current transaction commits (best effort)."""
    transaction.on_commit(lambda: send_now(user_id, payload))


def end_sessions(user_id: int | str) -> None:
    """After the current transaction commits, close the user's open websockets (4401): their
    account was deactivated or deleted. Best effort, like every push; a socket that misses it still
    closes when its token expires."""
    transaction.on_commit(lambda: _send_to_user(user_id, {"type": "session.ended"}))

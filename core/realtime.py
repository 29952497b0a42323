"""Pushing events to a user's open websockets, only once the write that caused them commits."""

from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction


def user_group(user_id: int | str) -> str:
    return f"user.{user_id}"


def send_now(user_id: int | str, payload: dict[str, Any]) -> None:
    layer = get_channel_layer()
    async_to_sync(layer.group_send)(user_group(user_id), {"type": "user.event", "payload": payload})


def push_to_user(user_id: int | str, payload: dict[str, Any]) -> None:
    """Send `payload` to the user's websockets after the current transaction commits."""
    transaction.on_commit(lambda: send_now(user_id, payload))

"""Websocket pushes with the channel layer's Redis paused or killed: the write that pushes commits
and returns within the send bound, the event is dropped with one warning line, the breaker skips the
layer afterwards, and events flow again once Redis answers."""

import asyncio
import logging
import time

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from core.breaker import OPEN
from core.realtime import _layer_breaker, push_to_user, send_now, user_group

pytestmark = pytest.mark.django_db

SKIPPED_SENDS = 20


@pytest.fixture
def layer(redis_process, settings):
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [redis_process.url]},
        }
    }
    settings.BREAKER_RESET_S = 1.0
    return get_channel_layer()


def listen(layer, group: str) -> str:
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(group, channel)
    return channel


def next_payload(layer, channel: str) -> dict:
    async def receive():
        return await asyncio.wait_for(layer.receive(channel), 5)

    return async_to_sync(receive)()["payload"]


def seconds_since(started: float) -> float:
    return time.monotonic() - started


def send_until_delivered(user_id, payload, within_s=5.0) -> None:
    deadline = time.monotonic() + within_s
    while not send_now(user_id, payload):
        assert time.monotonic() < deadline, "events were not sent again after Redis came back"
        time.sleep(0.05)


def assert_dropped_quietly(caplog) -> None:
    warnings = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert len(warnings) == 1, [record.getMessage() for record in warnings]
    assert warnings[0].name == "core.breaker" and warnings[0].exc_info is None
    assert "channel layer" in warnings[0].getMessage()


def test_a_push_after_commit_with_the_layer_paused_is_dropped_within_the_bound(
    layer, redis_process, settings, make_user, django_capture_on_commit_callbacks, caplog
):
    from django.db import transaction

    user = make_user()
    channel = listen(layer, user_group(user.pk))
    redis_process.pause()
    caplog.set_level(logging.INFO)

    started = time.monotonic()
    with django_capture_on_commit_callbacks(execute=True) as callbacks, transaction.atomic():
        push_to_user(user.pk, {"type": "notification", "text": "lost"})
    assert len(callbacks) == 1  # still sent on commit only
    assert seconds_since(started) < settings.REALTIME_SEND_TIMEOUT_S + 1  # it hung for good before
    assert _layer_breaker(layer).state == OPEN

    started = time.monotonic()
    assert not any(send_now(user.pk, {"type": "notification"}) for _ in range(SKIPPED_SENDS))
    assert seconds_since(started) < 0.5  # the layer is not tried: 20 sends would take 10 s
    assert_dropped_quietly(caplog)

    redis_process.resume()
    send_until_delivered(user.pk, {"type": "notification", "text": "back"})
    assert next_payload(layer, channel) == {"type": "notification", "text": "back"}


def test_a_notification_is_stored_with_the_layer_down_and_pushes_resume_after_a_restart(
    layer, redis_process, make_user, django_capture_on_commit_callbacks, caplog
):
    from social.models import Notification
    from social.services import notify

    user, actor = make_user(), make_user()
    redis_process.kill()
    caplog.set_level(logging.INFO)

    started = time.monotonic()
    with django_capture_on_commit_callbacks(execute=True):
        notification = notify(user=user, kind="follow", actor=actor)
    assert seconds_since(started) < 1
    assert Notification.objects.filter(pk=notification.pk, user=user).exists()
    assert_dropped_quietly(caplog)

    redis_process.start()
    channel = listen(layer, user_group(user.pk))
    send_until_delivered(user.pk, {"type": "notification", "text": "back"})
    assert next_payload(layer, channel) == {"type": "notification", "text": "back"}


@pytest.mark.django_db(transaction=True)
def test_a_websocket_opened_while_the_layer_is_down_is_told_to_come_back_later(
    layer, redis_process, make_user
):
    from channels.testing import WebsocketCommunicator
    from rest_framework_simplejwt.tokens import AccessToken

    from config.asgi import application
    from core.consumers import CLOSE_TRY_AGAIN_LATER

    token = str(AccessToken.for_user(make_user("ws_later")))
    redis_process.kill()

    async def open_socket():
        communicator = WebsocketCommunicator(application, f"/ws/events?token={token}")
        started = time.monotonic()
        connected, code = await communicator.connect(timeout=5)
        return connected, code, time.monotonic() - started

    connected, code, elapsed = async_to_sync(open_socket)()
    assert (connected, code) == (False, CLOSE_TRY_AGAIN_LATER)
    assert elapsed < 2

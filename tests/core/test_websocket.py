from datetime import timedelta

import pytest
from channels.testing import WebsocketCommunicator
from rest_framework_simplejwt.tokens import AccessToken

from config.asgi import application
from core.realtime import send_now

pytestmark = [pytest.mark.django_db(transaction=True)]


async def test_valid_token_connects_and_receives_user_events(make_user):
    from asgiref.sync import sync_to_async

    user = await sync_to_async(make_user)("wsuser")
    other = await sync_to_async(make_user)("wsother")
    token = str(AccessToken.for_user(user))
    communicator = WebsocketCommunicator(application, f"/ws/events?token={token}")
    connected, _ = await communicator.connect()
    assert connected
    await sync_to_async(send_now)(other.pk, {"type": "notification", "text": "not for you"})
    await sync_to_async(send_now)(user.pk, {"type": "notification", "text": "hello"})
    message = await communicator.receive_json_from(timeout=5)
    assert message == {"type": "notification", "text": "hello"}
    await communicator.send_json_to({"type": "ping"})
    assert await communicator.receive_json_from(timeout=5) == {"type": "pong"}
    await communicator.disconnect()


@pytest.mark.parametrize("token", ["", "garbage", "eyJhbGciOiJIUzI1NiJ9.e30.bad"])
async def test_bad_token_is_refused(token):
    communicator = WebsocketCommunicator(application, f"/ws/events?token={token}")
    connected, code = await communicator.connect()
    assert not connected
    assert code == 4401


async def test_expired_token_is_refused(make_user):
    from asgiref.sync import sync_to_async

    user = await sync_to_async(make_user)("wsexpired")
    token = AccessToken.for_user(user)
    token.set_exp(lifetime=-timedelta(seconds=5))
    communicator = WebsocketCommunicator(application, f"/ws/events?token={token}")
    connected, code = await communicator.connect()
    assert not connected and code == 4401


async def test_events_sent_inside_a_rolled_back_transaction_never_arrive(make_user):
    from asgiref.sync import sync_to_async
    from django.db import transaction

    from core.realtime import push_to_user

    user = await sync_to_async(make_user)("wsrollback")
    token = str(AccessToken.for_user(user))
    communicator = WebsocketCommunicator(application, f"/ws/events?token={token}")
    assert (await communicator.connect())[0]

    def write_and_roll_back():
        try:
            with transaction.atomic():
                push_to_user(user.pk, {"type": "notification", "text": "rolled back"})
                raise RuntimeError
        except RuntimeError:
            pass
        with transaction.atomic():
            push_to_user(user.pk, {"type": "notification", "text": "committed"})

    await sync_to_async(write_and_roll_back)()
    assert (await communicator.receive_json_from(timeout=5))["text"] == "committed"
    assert await communicator.receive_nothing(timeout=0.3)
    await communicator.disconnect()

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


async def _closed_with(communicator, timeout: float = 5) -> int:
    message = await communicator.receive_output(timeout=timeout)
    assert message["type"] == "websocket.close", message
    return message["code"]


async def test_the_token_may_travel_as_a_subprotocol_kept_out_of_urls(make_user):
    from asgiref.sync import sync_to_async

    user = await sync_to_async(make_user)("ws_subprotocol")
    offered = f"bearer.{AccessToken.for_user(user)}"
    communicator = WebsocketCommunicator(application, "/ws/events", subprotocols=[offered])
    connected, subprotocol = await communicator.connect()
    assert connected and subprotocol == offered  # a browser requires the server to pick it
    await sync_to_async(send_now)(user.pk, {"type": "notification", "text": "hello"})
    assert await communicator.receive_json_from(timeout=5) == {"type": "notification", "text": "hello"}
    await communicator.disconnect()


async def test_a_socket_closes_when_its_token_expires(make_user):
    from asgiref.sync import sync_to_async

    user = await sync_to_async(make_user)("ws_expiring")
    token = AccessToken.for_user(user)
    token.set_exp(lifetime=timedelta(seconds=1))
    communicator = WebsocketCommunicator(application, f"/ws/events?token={token}")
    connected, _ = await communicator.connect()
    assert connected
    assert await _closed_with(communicator) == 4401


@pytest.mark.parametrize("ending", ["deactivated", "deleted"])
async def test_a_socket_closes_when_its_account_is_deactivated_or_deleted(make_user, ending):
    from asgiref.sync import sync_to_async

    from social.services import delete_account

    user = await sync_to_async(make_user)(f"ws_{ending}")
    communicator = WebsocketCommunicator(application, f"/ws/events?token={AccessToken.for_user(user)}")
    connected, _ = await communicator.connect()
    assert connected

    def end():
        if ending == "deleted":
            delete_account(user=user)
        else:
            user.is_active = False
            user.save(update_fields=["is_active"])

    await sync_to_async(end)()
    assert await _closed_with(communicator) == 4401


async def test_an_idle_socket_stays_open_past_the_layers_blocking_wait(make_user):
    """The layer waits on Redis in blocking pops of 5 s; a socket timeout no longer than that closed
    every socket that had received nothing for a few seconds."""
    import asyncio

    from asgiref.sync import sync_to_async

    user = await sync_to_async(make_user)("wsidle")
    token = str(AccessToken.for_user(user))
    communicator = WebsocketCommunicator(application, f"/ws/events?token={token}")
    assert (await communicator.connect())[0]
    await asyncio.sleep(12)
    assert await communicator.receive_nothing(timeout=0.1)
    await sync_to_async(send_now)(user.pk, {"type": "notification", "text": "still here"})
    assert await communicator.receive_json_from(timeout=5) == {"type": "notification", "text": "still here"}
    await communicator.disconnect()

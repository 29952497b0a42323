import asyncio
import contextlib
import logging

from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from core.breaker import UNAVAILABLE_ERRORS
from core.realtime import user_group

logger = logging.getLogger(__name__)

# Close code for a refused handshake (4000-4999 are free for applications); 4401 mirrors HTTP 401.
CLOSE_NOT_AUTHENTICATED = 4401
# RFC 6455 "Try Again Later": the channel layer (Redis) does not answer; the client reconnects later.
CLOSE_TRY_AGAIN_LATER = 1013


class EventsConsumer(AsyncJsonWebsocketConsumer):
    """`/ws/events`: pushes the events of the signed-in user; the client only listens."""

    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_NOT_AUTHENTICATED)
            return
        group = user_group(user.pk)
        try:
            await asyncio.wait_for(
                self.channel_layer.group_add(group, self.channel_name), settings.REALTIME_SEND_TIMEOUT_S
            )
        except UNAVAILABLE_ERRORS as exc:
            logger.warning("websocket refused, the channel layer does not answer: %s", type(exc).__name__)
            await self.close(code=CLOSE_TRY_AGAIN_LATER)
            return
        self.group_name = group
        await self.accept()

    async def disconnect(self, code):
        group = getattr(self, "group_name", None)
        if group:
            # Best effort: a group entry left behind expires in the channel layer by itself.
            with contextlib.suppress(UNAVAILABLE_ERRORS):
                await asyncio.wait_for(
                    self.channel_layer.group_discard(group, self.channel_name),
                    settings.REALTIME_SEND_TIMEOUT_S,
                )

    async def receive_json(self, content, **kwargs):
        if isinstance(content, dict) and content.get("type") == "ping":
            await self.send_json({"type": "pong"})

    async def user_event(self, event):
        await self.send_json(event["payload"])

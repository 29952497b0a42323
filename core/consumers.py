import asyncio
import contextlib
import logging
import time

from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from core.breaker import UNAVAILABLE_ERRORS
from core.realtime import user_group

logger = logging.getLogger(__name__)

# Close code for a refused handshake or an ended session (4000-4999 are free for applications);
# 4401 mirrors HTTP 401: the token expired, or the account was deactivated or deleted.
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
        # A browser drops a socket whose server picks none of the subprotocols it offered.
        await self.accept(subprotocol=self.scope.get("auth_subprotocol"))
        expires_at = self.scope.get("token_expires_at")
        if expires_at is not None:
            delay = max(0.0, float(expires_at) - time.time())
            self._expiry_timer = asyncio.get_running_loop().call_later(delay, self._close_expired)

    def _close_expired(self) -> None:
        asyncio.ensure_future(self.close(code=CLOSE_NOT_AUTHENTICATED))

    async def session_ended(self, event):
        """The account was deactivated or deleted (core.realtime.end_sessions)."""
        await self.close(code=CLOSE_NOT_AUTHENTICATED)

    async def disconnect(self, code):
        expiry = getattr(self, "_expiry_timer", None)
        if expiry is not None:
            expiry.cancel()
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

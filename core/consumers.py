from channels.generic.websocket import AsyncJsonWebsocketConsumer

from core.realtime import user_group

# Close code for a refused handshake (4000-4999 are free for applications); 4401 mirrors HTTP 401.
CLOSE_NOT_AUTHENTICATED = 4401


class EventsConsumer(AsyncJsonWebsocketConsumer):
    """`/ws/events`: pushes the events of the signed-in user; the client only listens."""

    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_NOT_AUTHENTICATED)
            return
        self.group_name = user_group(user.pk)
        await self.channel_layer.group_add(self.group_name, self.channel_name)
        await self.accept()

    async def disconnect(self, code):
        group = getattr(self, "group_name", None)
        if group:
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive_json(self, content, **kwargs):
        if isinstance(content, dict) and content.get("type") == "ping":
            await self.send_json({"type": "pong"})

    async def user_event(self, event):
        await self.send_json(event["payload"])

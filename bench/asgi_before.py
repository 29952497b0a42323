"""The ASGI app `make run` served until 2026-12, for `bench/run_load.py`'s `old` setup: HTTP through
Django's ASGI handler (a thread and a database connection per request), the same websocket."""

from channels.routing import ProtocolTypeRouter
from django.core.asgi import get_asgi_application

from config.asgi import application as current

application = ProtocolTypeRouter(
    {"http": get_asgi_application(), "websocket": current.application_mapping["websocket"]}
)

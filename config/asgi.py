"""ASGI entry point: HTTP and the `/ws/events` websocket."""

import os

from django.core.asgi import get_asgi_application

from config.env import load_dev_env

load_dev_env()
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

django_asgi_app = get_asgi_application()

from core.startup import freeze_loaded_objects, require_services  # noqa: E402

require_services()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from core.consumers import EventsConsumer  # noqa: E402
from core.websocket_auth import JwtQueryStringAuthMiddleware  # noqa: E402

websocket_urlpatterns = [path("ws/events", EventsConsumer.as_asgi())]

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": JwtQueryStringAuthMiddleware(URLRouter(websocket_urlpatterns)),
    }
)

freeze_loaded_objects()

"""ASGI entry point, what `make run` serves with granian: the `/ws/events` websocket, and HTTP through
the WSGI app (config.wsgi) in one thread per process.

Django's own ASGI handler runs each request's sync code in a new thread, and Django keeps database
connections per thread: every request opened a connection of its own. Here the WSGI app runs in
one thread per process, as in a WSGI server's worker, and keeps its connection (DB_CONN_MAX_AGE):
a third of the CPU per request under mixed load (bench/run_load.py; figures in bench/README.md).
"""

import io
import sys
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import async_to_sync, sync_to_async
from channels.routing import ProtocolTypeRouter, URLRouter
from django.urls import path

from config.wsgi import application as wsgi_application  # first: sets Django up, checks the services
from core.consumers import EventsConsumer
from core.startup import freeze_loaded_objects
from core.websocket_auth import JwtQueryStringAuthMiddleware

# A response goes to the event loop in pieces of at least this size (each piece is one hop there);
# Django streams files in blocks of 4 KB.
PIECE_BYTES = 256 * 1024


# The server's receive and send are not always coroutine functions (granian's are not), which
# async_to_sync warns about; these are.
async def receive_one(receive) -> dict:
    return await receive()


async def send_all(send, messages: list[dict]) -> None:
    for message in messages:
        await send(message)


class ClientDisconnected(OSError):
    """The client went away before its body ended (Django reports an unreadable body); without
    this, the part received would pass for the whole body."""


class RequestBody(io.RawIOBase):
    """`wsgi.input`: the request body, received as the app reads it, so that a body refused from its
    Content-Length (core.middleware) is never read, and one sent without a length is read no
    further than the limit (core.middleware.SpoolBodyWithoutLength). It ends where the body ends
    (`wsgi.input_terminated`)."""

    def __init__(self, receive):
        self.receive = receive
        self.receive_in_loop = async_to_sync(receive_one)
        self.pending = memoryview(b"")
        self.more = True

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self.pending and self.more:
            message = self.receive_in_loop(self.receive)
            if message["type"] == "http.disconnect":
                raise ClientDisconnected("the client disconnected before the end of its body")
            self.pending, self.more = memoryview(message.get("body", b"")), message.get("more_body", False)
        size = min(len(buffer), len(self.pending))
        buffer[:size], self.pending = self.pending[:size], self.pending[size:]
        return size


def wsgi_environ(scope: dict, body) -> dict:
    server = scope.get("server") or ("localhost", 80)
    environ = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": scope.get("root_path", "").encode().decode("latin1"),
        "PATH_INFO": scope["path"].encode().decode("latin1"),
        "QUERY_STRING": scope["query_string"].decode("latin1"),
        "SERVER_NAME": server[0],
        "SERVER_PORT": str(server[1]),
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "REMOTE_ADDR": (scope.get("client") or ("",))[0],
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": body,
        "wsgi.input_terminated": True,
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    for raw_name, raw_value in scope["headers"]:
        name, value = raw_name.decode("latin1").upper().replace("-", "_"), raw_value.decode("latin1")
        key = name if name in ("CONTENT_TYPE", "CONTENT_LENGTH") else f"HTTP_{name}"
        environ[key] = f"{environ[key]},{value}" if key in environ else value
    return environ


class WsgiInOneThread:
    """An ASGI HTTP app that runs a WSGI app in one thread of its own. It gets there through
    asgiref's sync_to_async, so that async_to_sync in a view (a websocket push) runs on the
    server's event loop rather than on a new loop with a new Redis connection."""

    def __init__(self, wsgi_app):
        self.wsgi_app = wsgi_app
        thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wsgi")
        self.respond = sync_to_async(self.respond_in_thread, thread_sensitive=False, executor=thread)

    async def __call__(self, scope, receive, send) -> None:
        await self.respond(scope, receive, send)

    def respond_in_thread(self, scope, receive, send) -> None:
        send_in_loop = async_to_sync(send_all)
        start = {"type": "http.response.start"}

        def start_response(status: str, headers: list, exc_info=None) -> None:
            start["status"] = int(status[:3])
            start["headers"] = [
                (name.lower().encode("latin1"), value.encode("latin1")) for name, value in headers
            ]

        chunks = self.wsgi_app(wsgi_environ(scope, io.BufferedReader(RequestBody(receive))), start_response)
        try:
            unsent, piece = [start], []
            for chunk in chunks:
                piece.append(chunk)
                if sum(map(len, piece)) >= PIECE_BYTES:
                    body = {"type": "http.response.body", "body": b"".join(piece), "more_body": True}
                    send_in_loop(send, [*unsent, body])
                    unsent, piece = [], []
            send_in_loop(send, [*unsent, {"type": "http.response.body", "body": b"".join(piece)}])
        finally:
            if hasattr(chunks, "close"):
                chunks.close()  # Django's request_finished: the connection is kept or closed


websocket_urlpatterns = [path("ws/events", EventsConsumer.as_asgi())]

application = ProtocolTypeRouter(
    {
        "http": WsgiInOneThread(wsgi_application),
        "websocket": JwtQueryStringAuthMiddleware(URLRouter(websocket_urlpatterns)),
    }
)

freeze_loaded_objects()

"""The web server `make run` starts: `config.asgi`'s HTTP through the WSGI app in one thread, and the
command itself (granian) serving HTTP and the websocket on one port."""

import asyncio
import json
import os
import subprocess
import threading
import time
import urllib.request
from types import SimpleNamespace
from urllib.parse import urlparse, urlunparse

import pytest
import websockets
from asgiref.sync import async_to_sync
from asgiref.testing import ApplicationCommunicator
from django.db import connection
from rest_framework_simplejwt.tokens import AccessToken

from config.asgi import PIECE_BYTES, WsgiInOneThread
from config.services import BASE_DIR, free_port, web_server
from core.realtime import send_now
from tests.conftest import PASSWORD

HTTP_SCOPE = {
    "type": "http",
    "http_version": "1.1",
    "method": "POST",
    "scheme": "http",
    "path": "/echo",
    "root_path": "",
    "query_string": b"a=1",
    "headers": [(b"content-type", b"text/plain"), (b"x-two", b"1"), (b"x-two", b"2")],
    "client": ("10.1.2.3", 5555),
    "server": ("127.0.0.1", 8000),
}


class RecordingApp:
    """A WSGI app that echoes its body and records what it saw."""

    def __init__(self, *, read_body: bool = True, chunks: list[bytes] | None = None):
        self.read_body, self.chunks = read_body, chunks
        self.threads, self.environs, self.closed = set(), [], 0

    def __call__(self, environ, start_response):
        self.threads.add(threading.get_ident())
        self.environs.append(environ)
        start_response("200 OK", [("Content-Type", "text/plain")])
        app = self

        class Body(list):
            def close(self):
                app.closed += 1

        if not self.read_body:
            return Body([b"refused"])
        return Body(self.chunks if self.chunks is not None else [environ["wsgi.input"].read()])


async def call(app, messages: list[dict], bridge: WsgiInOneThread | None = None) -> list[dict]:
    communicator = ApplicationCommunicator(bridge or WsgiInOneThread(app), HTTP_SCOPE)
    for message in messages:
        await communicator.send_input(message)
    sent = [await communicator.receive_output(5)]
    while sent[-1]["type"] != "http.response.body" or sent[-1].get("more_body"):
        sent.append(await communicator.receive_output(5))
    await communicator.wait(5)
    return sent


async def test_the_body_is_read_across_messages_and_the_environ_is_complete():
    app = RecordingApp()
    parts = [b"one ", b"two ", b"three"]
    sent = await call(
        app, [{"type": "http.request", "body": part, "more_body": part != parts[-1]} for part in parts]
    )
    assert sent[0] == {
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"content-type", b"text/plain")],
    }
    assert sent[1:] == [{"type": "http.response.body", "body": b"one two three"}]
    environ = app.environs[0]
    assert (environ["REQUEST_METHOD"], environ["PATH_INFO"], environ["QUERY_STRING"]) == (
        "POST",
        "/echo",
        "a=1",
    )
    assert environ["REMOTE_ADDR"] == "10.1.2.3" and environ["CONTENT_TYPE"] == "text/plain"
    assert environ["HTTP_X_TWO"] == "1,2"
    assert app.closed == 1


async def test_a_body_the_app_does_not_read_is_never_received():
    app = RecordingApp(read_body=False)
    # No http.request message is sent: the response comes all the same.
    sent = await call(app, [])
    assert sent[-1] == {"type": "http.response.body", "body": b"refused"}


async def test_a_streamed_response_goes_in_pieces_and_every_request_runs_in_one_thread():
    chunks = [bytes([n % 256]) * 4096 for n in range(150)]  # 600 KB in Django's 4 KB blocks
    app = RecordingApp(chunks=chunks)
    bridge = WsgiInOneThread(app)
    sent = await call(app, [{"type": "http.request", "body": b""}], bridge)
    bodies = [message for message in sent if message["type"] == "http.response.body"]
    assert b"".join(message["body"] for message in bodies) == b"".join(chunks)
    assert [message.get("more_body", False) for message in bodies] == [True, True, False]
    assert all(len(message["body"]) >= PIECE_BYTES for message in bodies[:-1])
    await call(app, [{"type": "http.request", "body": b""}], bridge)
    assert len(app.threads) == 1 and app.closed == 2


async def test_async_code_in_the_app_runs_on_the_servers_event_loop():
    """So a websocket push from a view reuses the loop's Redis connections."""
    loops = []

    async def record_loop():
        loops.append(asyncio.get_running_loop())

    def app(environ, start_response):
        async_to_sync(record_loop)()
        start_response("204 No Content", [])
        return []

    sent = await call(app, [{"type": "http.request", "body": b""}])
    assert sent[0]["status"] == 204
    assert loops == [asyncio.get_running_loop()]


def database_url_of_tests() -> str:
    url = urlparse(os.environ["DATABASE_URL"])
    return urlunparse(url._replace(path="/" + connection.settings_dict["NAME"]))


@pytest.fixture
def served():
    """What `make run` starts to serve HTTP and the websocket, on a free port, on the test database."""
    port = free_port()
    command, server_env = web_server("127.0.0.1", port)
    env = {**os.environ, **server_env, "DATABASE_URL": database_url_of_tests(), "ALLOWED_HOSTS": "127.0.0.1"}
    server = subprocess.Popen(command, env=env, cwd=BASE_DIR, start_new_session=True)
    base = f"127.0.0.1:{port}"
    workers = int(command[command.index("--workers") + 1])
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"http://{base}/api/v1/health", timeout=5).close()
            break
        except OSError:
            assert server.poll() is None, "the web server exited"
            assert time.monotonic() < deadline, "the web server did not answer in 60 s"
            time.sleep(0.2)
    yield SimpleNamespace(address=base, workers=workers)
    server.terminate()
    server.wait(timeout=20)


def server_backends() -> set[int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return {row[0] for row in cursor.fetchall()}


@pytest.mark.django_db(transaction=True)
def test_one_port_serves_http_and_the_websocket_and_keeps_its_database_connections(served, make_user):
    address = served.address
    user = make_user("served")
    token = str(AccessToken.for_user(user))
    request = urllib.request.Request(
        f"http://{address}/api/v1/me", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert json.load(response)["username"] == "served"
    sign_in = urllib.request.Request(
        f"http://{address}/api/v1/auth/token",
        data=json.dumps({"username": "served", "password": PASSWORD}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(sign_in, timeout=10) as response:
        assert "access" in json.load(response)
    seen = set()
    for _ in range(12):
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
        seen |= server_backends()
    # Each worker keeps its connection: a few, all still open; not one per request.
    assert seen and len(seen) <= served.workers and seen <= server_backends()

    async def listen() -> None:
        async with websockets.connect(f"ws://{address}/ws/events?token={token}") as socket:
            await socket.send(json.dumps({"type": "ping"}))
            assert json.loads(await asyncio.wait_for(socket.recv(), 10)) == {"type": "pong"}
            assert await asyncio.to_thread(send_now, user.pk, {"type": "notification", "text": "hello"})
            assert json.loads(await asyncio.wait_for(socket.recv(), 10)) == {
                "type": "notification",
                "text": "hello",
            }
        offered = f"bearer.{token}"
        async with websockets.connect(f"ws://{address}/ws/events", subprotocols=[offered]) as socket:
            assert socket.subprotocol == offered
            await socket.send(json.dumps({"type": "ping"}))
            assert json.loads(await asyncio.wait_for(socket.recv(), 10)) == {"type": "pong"}
        with pytest.raises(websockets.InvalidStatus):
            async with websockets.connect(f"ws://{address}/ws/events?token=garbage"):
                pass

    asyncio.run(listen())

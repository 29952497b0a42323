"""MAX_REQUEST_BODY_BYTES is enforced while the body is read, with or without Content-Length: through
the WSGI app (config.wsgi, what granian's WSGI interface serves) and through granian serving
config.asgi; nothing past the limit is read, and no upload reaches a temporary file."""

import http.client
import io
import json
import os
import socket
import subprocess
import threading
import time
import urllib.request

import pytest
from django.core.files.uploadhandler import TemporaryFileUploadHandler
from rest_framework_simplejwt.tokens import AccessToken

from config.asgi import wsgi_environ
from config.services import BASE_DIR, free_port, web_server
from config.wsgi import application
from tests.conftest import PASSWORD
from tests.core.test_web_server import database_url_of_tests
from tests.journeys.test_schema_fuzz import wsgi_without_connection_resets  # noqa: F401 - a fixture

LIMIT = 64 * 1024
BOUNDARY = "body-limit-test"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"


class CountingBody(io.BytesIO):
    """A `wsgi.input` that counts the bytes it hands out."""

    handed_out = 0

    def read(self, size=-1, /):
        data = super().read(size)
        self.handed_out += len(data)
        return data

    def readline(self, size=-1, /):
        line = super().readline(size)
        self.handed_out += len(line)
        return line


def post(path: str, body: CountingBody, content_type: str, *, length: int | None = None, **extra):
    """`application` answering a POST as granian's WSGI interface hands it over: a body without a
    length is chunked, and `wsgi.input` ends where the body ends."""
    framing = (b"transfer-encoding", b"chunked") if length is None else (b"content-length", b"%d" % length)
    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "query_string": b"",
        "headers": [(b"content-type", content_type.encode()), framing],
        "client": ("127.0.0.1", 0),
        "server": ("testserver", 80),
    }
    environ = {**wsgi_environ(scope, body), **extra}
    answer = {}

    def start_response(status, headers, exc_info=None):
        answer["status"] = int(status[:3])

    chunks = application(environ, start_response)
    try:
        content = b"".join(chunks)
    finally:
        chunks.close()
    return answer["status"], json.loads(content)


def registration(username: str) -> bytes:
    return json.dumps({"username": username, "password": PASSWORD, "birth_date": "1990-01-01"}).encode()


def multipart(file_bytes: bytes) -> bytes:
    head = (
        f"--{BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="file"; filename="clip.mp4"\r\n'
        "Content-Type: video/mp4\r\n\r\n"
    )
    return head.encode() + file_bytes + f"\r\n--{BOUNDARY}--\r\n".encode()


uploads_written: list[tuple[str, int]] = []


class RecordingUploadHandler(TemporaryFileUploadHandler):
    """Django's handler of uploads on disk, recording each piece it writes and where."""

    def receive_data_chunk(self, raw_data, start):
        uploads_written.append((os.path.dirname(self.file.temporary_file_path()), len(raw_data)))
        return super().receive_data_chunk(raw_data, start)


@pytest.fixture
def small_limit(settings, tmp_path, wsgi_without_connection_resets):  # noqa: F811
    settings.MAX_REQUEST_BODY_BYTES = LIMIT
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 16 * 1024
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path)
    settings.FILE_UPLOAD_HANDLERS = [f"{__name__}.RecordingUploadHandler"]
    uploads_written.clear()
    return tmp_path


def assert_too_large(status: int, answer: dict, max_bytes: int = LIMIT) -> None:
    assert status == 413, answer
    assert answer["error"]["code"] == "too_large"
    assert answer["error"]["details"] == {"max_bytes": max_bytes}


@pytest.mark.django_db
def test_a_body_without_length_over_the_limit_is_413_after_reading_at_most_the_limit(small_limit):
    body = CountingBody(b" " * (10 * LIMIT - 2) + b"{}")  # valid JSON, ten times the limit
    status, answer = post("/api/v1/auth/register", body, "application/json")
    assert_too_large(status, answer)
    # The limit, and the one byte more that shows the body is longer.
    assert body.handed_out <= LIMIT + 1


@pytest.mark.django_db
def test_a_body_without_length_under_the_limit_is_read_whole(small_limit):
    data = registration("chunked")
    body = CountingBody(data)
    status, answer = post("/api/v1/auth/register", body, "application/json")
    assert status == 201, answer
    assert answer["username"] == "chunked" and body.handed_out == len(data)
    data = registration("exactly")
    exactly = CountingBody(b" " * (LIMIT - len(data)) + data)  # the limit to the byte
    status, answer = post("/api/v1/auth/register", exactly, "application/json")
    assert status == 201, answer
    assert answer["username"] == "exactly" and exactly.handed_out == LIMIT


@pytest.mark.django_db
def test_a_declared_length_over_the_limit_is_413_without_reading_anything(small_limit):
    data = multipart(b"x" * LIMIT)
    body = CountingBody(data)
    status, answer = post("/api/v1/provenance/verify", body, MULTIPART, length=len(data))
    assert_too_large(status, answer)
    assert body.handed_out == 0


@pytest.mark.django_db
def test_an_upload_without_length_over_the_limit_is_413_and_never_reaches_a_temporary_file(small_limit):
    body = CountingBody(multipart(os.urandom(10 * LIMIT)))
    status, answer = post("/api/v1/provenance/verify", body, MULTIPART)
    assert_too_large(status, answer)
    assert body.handed_out <= LIMIT + 1
    assert uploads_written == [] and list(small_limit.iterdir()) == []


@pytest.mark.django_db
def test_an_upload_without_length_under_the_limit_streams_to_the_upload_folder(small_limit, make_user):
    file_bytes = os.urandom(LIMIT // 2)  # not a video
    body = CountingBody(multipart(file_bytes))
    token = AccessToken.for_user(make_user("uploader"))
    status, answer = post("/api/v1/provenance/verify", body, MULTIPART, HTTP_AUTHORIZATION=f"Bearer {token}")
    assert status == 415 and answer["error"]["code"] == "unsupported_media"  # it reached the check
    assert sum(size for _, size in uploads_written) == len(file_bytes)
    assert {folder for folder, _ in uploads_written} == {str(small_limit)}
    assert list(small_limit.iterdir()) == []  # and was removed after the answer


@pytest.mark.django_db
def test_a_body_without_length_is_not_read_from_a_server_whose_input_does_not_end(small_limit):
    """PEP 3333 servers (runserver's wsgiref) hand over the socket: reading past a length could block."""
    body = CountingBody(registration("unterminated"))
    status, answer = post(
        "/api/v1/auth/register", body, "application/json", **{"wsgi.input_terminated": False}
    )
    assert status == 400 and body.handed_out == 0


SERVER_LIMIT = 1024 * 1024
CHUNK = 64 * 1024


@pytest.fixture
def limited_server(transactional_db):
    """`make run`'s granian serving config.asgi with MAX_REQUEST_BODY_BYTES=1 MiB, one worker, wrapped
    to count the body bytes the application received (tests/core/body_counting_asgi.py)."""
    port = free_port()
    command, server_env = web_server("127.0.0.1", port)
    command[command.index("config.asgi:application")] = "tests.core.body_counting_asgi:application"
    command[command.index("--workers") + 1] = "1"
    env = {
        **os.environ,
        **server_env,
        "DATABASE_URL": database_url_of_tests(),
        "ALLOWED_HOSTS": "127.0.0.1",
        "MAX_REQUEST_BODY_BYTES": str(SERVER_LIMIT),
    }
    server = subprocess.Popen(command, env=env, cwd=BASE_DIR, start_new_session=True)
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/health", timeout=5).close()
            break
        except OSError:
            assert server.poll() is None, "the web server exited"
            assert time.monotonic() < deadline, "the web server did not answer in 60 s"
            time.sleep(0.2)
    yield port
    server.terminate()
    server.wait(timeout=20)


def post_chunked(port: int, path: str, total: int) -> tuple[int, dict[str, str], bytes, int]:
    """POSTs `total` bytes in 64 KiB chunks without Content-Length on a raw socket, reading the answer
    while sending; returns the status, headers, body and how many body bytes the server's socket
    took before it answered and closed (the socket buffers' share included)."""
    connection = socket.create_connection(("127.0.0.1", port), timeout=30)
    connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, CHUNK)
    connection.sendall(
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
        f"Content-Type: {MULTIPART}\r\n\r\n".encode()
    )
    sent = 0

    def send_body() -> None:
        nonlocal sent
        frame = b"%x\r\n" % CHUNK + b"x" * CHUNK + b"\r\n"
        try:
            while sent < total:
                view = memoryview(frame)
                while view:
                    taken = connection.send(view)
                    view = view[taken:]
                    sent += taken
            connection.sendall(b"0\r\n\r\n")
        except OSError:  # the server answered and closed
            pass

    sender = threading.Thread(target=send_body, daemon=True)
    sender.start()
    received = b""
    try:
        while data := connection.recv(65536):
            received += data
    except ConnectionResetError:
        pass
    sender.join(30)
    connection.close()
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in header_lines)
    return int(status_line.split()[1]), headers, body, sent


@pytest.mark.django_db(transaction=True)
def test_granian_refuses_a_chunked_body_over_the_limit_having_read_at_most_the_limit(limited_server):
    total = 40 * 1024 * 1024
    status, headers, body, sent = post_chunked(limited_server, "/api/v1/provenance/verify", total)
    assert status == 413, body
    assert_too_large(status, json.loads(body), SERVER_LIMIT)
    # The application got the limit and one byte more, plus what was left of the ASGI message
    # (one 64 KiB chunk) and io.BufferedReader's read-ahead.
    received = int(headers["x-body-bytes-received"])
    assert SERVER_LIMIT < received <= SERVER_LIMIT + 1 + CHUNK + io.DEFAULT_BUFFER_SIZE
    # What the server's socket took before it closed: that, granian's buffers and the kernel's.
    assert sent < total // 4, sent

    data = registration("chunked-served")
    conversation = http.client.HTTPConnection("127.0.0.1", limited_server, timeout=30)
    conversation.request(
        "POST", "/api/v1/auth/register", body=iter([data]), headers={"Content-Type": "application/json"}
    )
    response = conversation.getresponse()
    assert response.status == 201, response.read()
    assert json.load(response)["username"] == "chunked-served"
    assert int(response.headers["x-body-bytes-received"]) == len(data)
    conversation.close()


def test_a_body_cut_short_by_a_disconnect_is_not_taken_for_the_whole_body():
    from config.asgi import ClientDisconnected, RequestBody

    messages = iter(
        [
            {"type": "http.request", "body": b'{"username": "cut', "more_body": True},
            {"type": "http.disconnect"},
        ]
    )

    async def receive():
        return next(messages)

    body = RequestBody(receive)
    assert body.read(17) == b'{"username": "cut'
    with pytest.raises(ClientDisconnected):
        body.read()

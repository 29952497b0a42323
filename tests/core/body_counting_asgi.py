"""config.asgi's application, served by granian in tests/core/test_body_limit.py, counting the request
body bytes the server hands it: the count goes out in the `x-body-bytes-received` response header,
so that the test sees how much of a body the application read before it answered."""

from config.asgi import application as served_application


async def application(scope, receive, send) -> None:
    if scope["type"] != "http":
        return await served_application(scope, receive, send)
    received = 0

    async def counting_receive() -> dict:
        nonlocal received
        message = await receive()
        received += len(message.get("body", b""))
        return message

    async def send_with_count(message: dict) -> None:
        if message["type"] == "http.response.start":
            count = (b"x-body-bytes-received", str(received).encode())
            message = {**message, "headers": [*message["headers"], count]}
        await send(message)

    await served_application(scope, counting_receive, send_with_count)

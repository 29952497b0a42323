"""Load run of `GET /feed` (both tabs) against a real server, with a trivial endpoint as baseline.

    DATA_DIR=/tmp/bench .venv/bin/python bench/feed_load.py --server gunicorn --seconds 20
    DATA_DIR=/tmp/bench .venv/bin/python bench/feed_load.py --server uvicorn --seconds 20

It starts the chosen server on 127.0.0.1 (DEBUG off, 2 workers: one per core here; persistent
database connections for gunicorn) against the database that `bench/seed_social.py` filled, then runs 32 concurrent
keep-alive clients (asyncio, raw HTTP/1.1, one connection each, each client signed in as a
different seeded user) for `--seconds` per scenario after a warm-up:

- `me`: `GET /api/v1/me`, the trivial authenticated endpoint (the baseline);
- `following` and `for_you`: `GET /api/v1/feed?tab=...`, each client following `next_cursor` for
  three pages and then starting a new chain, as a person swiping would.

It prints requests/s, p50 and p99 latency and the ratio of each feed's throughput to the baseline
measured in the same run. `--url` runs against a server that is already up instead.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
CLIENTS = 32
PAGES_PER_CHAIN = 3


def setup_django() -> None:
    from config.env import load_dev_env

    load_dev_env()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()


def bench_tokens(count: int) -> list[str]:
    """Access tokens of the seeded users who follow the most people (so both tabs have content)."""
    from rest_framework_simplejwt.tokens import AccessToken

    from social.models import User

    users = list(
        User.objects.filter(username__startswith="bench_").order_by("-following_count", "id")[:count]
    )
    if len(users) < count:
        raise SystemExit("Seed the database first: bench/seed_social.py")
    return [str(AccessToken.for_user(user)) for user in users]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(kind: str, port: int, workers: int) -> subprocess.Popen:
    env = dict(os.environ)
    env.update(DEBUG="0", ALLOWED_HOSTS="127.0.0.1,localhost", LOG_LEVEL="WARNING")
    # Persistent connections for the pre-forked WSGI workers; under ASGI Django runs each request's
    # sync code in its own thread, so persistent connections pile up until PostgreSQL refuses more.
    env["DB_CONN_MAX_AGE"] = "60" if kind == "gunicorn" else "0"
    python = sys.executable
    if kind == "gunicorn":
        command = [
            python, "-m", "gunicorn", "config.wsgi:application", "--workers", str(workers),
            "--worker-class", "sync", "--bind", f"127.0.0.1:{port}", "--log-level", "warning",
        ]  # fmt: skip
    elif kind == "uvicorn":
        command = [
            python, "-m", "uvicorn", "config.asgi:application", "--workers", str(workers), "--host",
            "127.0.0.1", "--port", str(port), "--http", "httptools", "--loop", "uvloop",
            "--no-access-log", "--lifespan", "off", "--log-level", "warning",
        ]  # fmt: skip
    else:
        raise SystemExit(f"unknown server {kind}")
    log = open(f"/tmp/feed_load_{kind}_{port}.log", "w")  # noqa: SIM115 - lives as long as the server
    server = subprocess.Popen(command, env=env, cwd=BASE_DIR, stdout=log, stderr=log, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return server
        except OSError:
            if server.poll() is not None:
                raise SystemExit(f"the server exited; see {log.name}") from None
            time.sleep(0.2)
    raise SystemExit("the server did not start in 60 s")


def stop_server(server: subprocess.Popen) -> None:
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)


class Connection:
    """One keep-alive HTTP/1.1 connection; reconnects when the server closes it (sync workers do)."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, path: str, token: str) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\nAuthorization: Bearer {token}\r\n\r\n".encode()
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            body = await self.reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding") == "chunked":
            body = b""
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).strip(), 16)
                chunk = await self.reader.readexactly(size + 2)
                if size == 0:
                    break
                body += chunk[:-2]
        else:
            body = await self.reader.read()
            headers["connection"] = "close"
        if headers.get("connection", "").lower() == "close":
            self.writer.close()
            self.reader = self.writer = None
        return status, body


@dataclass
class Result:
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    elapsed_s: float = 0.0

    @property
    def rate(self) -> float:
        return len(self.latencies_ms) / self.elapsed_s if self.elapsed_s else 0.0

    def percentile(self, fraction: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def client_loop(host, port, token, scenario, stop_at, result: Result, record_after: float):
    connection = Connection(host, port)
    cursor, pages = None, 0
    while time.monotonic() < stop_at:
        if scenario == "me":
            path = "/api/v1/me"
        else:
            path = f"/api/v1/feed?tab={scenario}&limit=10" + (f"&cursor={quote(cursor)}" if cursor else "")
        started = time.monotonic()
        try:
            status, body = await connection.get(path, token)
        except (OSError, asyncio.IncompleteReadError):
            connection = Connection(host, port)
            result.errors += 1
            continue
        finished = time.monotonic()
        if status != 200:
            result.errors += 1
        elif started >= record_after:
            result.latencies_ms.append((finished - started) * 1000)
        if scenario != "me" and status == 200:
            pages += 1
            cursor = json.loads(body)["next_cursor"] if pages < PAGES_PER_CHAIN else None
            if cursor is None:
                pages = 0


async def run_scenario(host, port, tokens, scenario, seconds, warmup) -> Result:
    result = Result()
    now = time.monotonic()
    record_after, stop_at = now + warmup, now + warmup + seconds
    await asyncio.gather(
        *(client_loop(host, port, token, scenario, stop_at, result, record_after) for token in tokens)
    )
    result.elapsed_s = seconds
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--server", choices=["gunicorn", "uvicorn"], default="gunicorn")
    parser.add_argument("--url", help="an already running server, e.g. http://127.0.0.1:8101")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--scenarios", default="me,following,for_you")
    args = parser.parse_args()
    setup_django()
    tokens = bench_tokens(CLIENTS)
    server = None
    if args.url:
        parts = urlsplit(args.url)
        host, port, label = parts.hostname, parts.port or 80, args.url
    else:
        host, port = "127.0.0.1", free_port()
        server = start_server(args.server, port, args.workers)
        label = f"{args.server}, {args.workers} workers"
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    results = {}
    try:
        for scenario in args.scenarios.split(","):
            results[scenario] = asyncio.run(
                run_scenario(host, port, tokens, scenario, args.seconds, args.warmup)
            )
    finally:
        if server is not None:
            stop_server(server)
    baseline = results.get("me")
    print(f"server: {label}; {CLIENTS} clients; {args.seconds:g} s per scenario; {os.cpu_count()} cores")
    print(f"{'scenario':10s} {'req/s':>8s} {'p50 ms':>8s} {'p99 ms':>8s} {'errors':>7s} {'vs me':>6s}")
    for scenario, result in results.items():
        ratio = result.rate / baseline.rate if baseline and baseline.rate else float("nan")
        print(
            f"{scenario:10s} {result.rate:8.0f} {result.percentile(0.5):8.1f} {result.percentile(0.99):8.1f} "
            f"{result.errors:7d} {ratio:6.2f}"
        )
    if baseline:
        print(f"mean latency me {statistics.fmean(baseline.latencies_ms or [0]):.1f} ms")


if __name__ == "__main__":
    main()

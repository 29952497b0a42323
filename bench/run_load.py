"""Mixed load against the web server `make run` starts, in turns with the one it started before.

    DATA_DIR=/tmp/run-bench .venv/bin/python bench/seed_social.py --posts 20000   # once
    DATA_DIR=/tmp/run-bench .venv/bin/python bench/run_load.py --rounds 6 --seconds 10
    DATA_DIR=/tmp/run-bench .venv/bin/python bench/run_load.py --setups new,wsgi

Needs wrk (Debian: `apt-get install wrk`). Without DATABASE_URL it starts the embedded PostgreSQL and
Redis in DATA_DIR, then the setups side by side on free ports of 127.0.0.1, with the environment
`make run` gives them (DEBUG on, a log line per request, here to a file in the temporary folder):

- `old`: one uvicorn process, HTTP through Django's ASGI handler (`bench/asgi_before.py`): what
  `make run` started until 2026-12;
- `new`: what `config.services.web_server` names, i.e. what `make run` starts now;
- `wsgi`: the README's production API server, granian serving the WSGI app (HTTP only).

wrk runs 32 connections, one thread each, each signed in as a different user of `seed_social.py`'s,
each going round the same mix of ten requests: `GET /me`; `GET /feed` of both tabs, a first page
and the page after it; `GET /posts/{id}` three times; `PUT` and `DELETE /posts/{id}/like` (the like
notifies the author, over the websocket layer too) on a post the user may see, another post each
round. The setups take turns for `--seconds` each in `--rounds` rounds, after a warm-up of each,
who goes first alternating: the machine's speed drifts, and each round meets the setups alike. It
prints each round's requests/s, p50 and p99 (of every request, timed by the Lua client), the CPU
time per request of the setup's processes and PostgreSQL, and for two setups the second against
the first in each round and in all.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from feed_load import CONNECTIONS, WRK_DONE, WRK_TIMING, Result, bench_tokens, free_port, percentile
from harness import BASE_DIR, start_django

PYTHON = sys.executable

# One wrk thread per connection, so each Lua state is one client: its own token, posts and cursors.
WRK_SCRIPT = (
    """
local tokens = {%(tokens)s}
local posts = {%(posts)s}
local mix = {
  {"GET", "/api/v1/me"},
  {"GET", "/api/v1/feed?tab=following&limit=10", "following"},
  {"GET", "/api/v1/feed?tab=for_you&limit=10", "for_you"},
  {"GET", "/api/v1/posts/%%d"},
  {"PUT", "/api/v1/posts/%%d/like"},
  {"GET", "/api/v1/feed?tab=following&limit=10", "following", true},
  {"DELETE", "/api/v1/posts/%%d/like"},
  {"GET", "/api/v1/feed?tab=for_you&limit=10", "for_you", true},
  {"GET", "/api/v1/posts/%%d"},
  {"GET", "/api/v1/posts/%%d"},
}
local next_thread = 0
local threads = {}

function setup(thread)
  next_thread = next_thread + 1
  threads[next_thread] = thread
  thread:set("id", next_thread)
end

local step, round = 0, 0
local cursors = {}
local current_tab = nil

"""
    + WRK_TIMING
    + """
function request()
  if step == #mix then step, round = 0, round + 1 end
  step = step + 1
  local method, path, tab, later_page = unpack(mix[step])
  local own_posts = posts[(id - 1) %% #posts + 1]
  path = string.format(path, own_posts[round %% #own_posts + 1])
  current_tab = tab
  if later_page and cursors[tab] then path = path .. "&cursor=" .. escape(cursors[tab]) end
  sent_at = now_us()
  return wrk.format(method, path, {["Authorization"] = "Bearer " .. tokens[(id - 1) %% #tokens + 1]})
end

function response(status, headers, body)
  latencies[#latencies + 1] = math.floor(now_us() - sent_at)
  if current_tab then
    cursors[current_tab] = status == 200 and body:match('"next_cursor":%%s*"([^"]+)"') or nil
  end
end

"""
    + WRK_DONE
    + """
"""
)


def old_commands(host: str, port: int) -> list[tuple[list[str], dict[str, str]]]:
    """What `make run` started before: one uvicorn process, HTTP through Django's ASGI handler."""
    return [
        ([PYTHON, "-m", "uvicorn", "asgi_before:application", "--app-dir", str(BASE_DIR / "bench"),
          "--host", host, "--port", str(port), "--no-access-log", "--lifespan", "off"], {}),
    ]  # fmt: skip


def new_commands(host: str, port: int) -> list[tuple[list[str], dict[str, str]]]:
    """What `make run` starts now."""
    from config.services import web_server

    return [web_server(host, port)]


def wsgi_commands(host: str, port: int) -> list[tuple[list[str], dict[str, str]]]:
    """The README's production API server, HTTP only: granian serving the WSGI app."""
    return [
        ([PYTHON, "-m", "granian", "--interface", "wsgi", "config.wsgi:application", "--workers", "2",
          "--blocking-threads", "1", "--host", host, "--port", str(port)], {"DB_CONN_MAX_AGE": "60"}),
    ]  # fmt: skip


SETUPS = {"old": old_commands, "new": new_commands, "wsgi": wsgi_commands}


@dataclass
class Server:
    name: str
    url: str
    processes: list[subprocess.Popen]


def start_server(name: str, env: dict[str, str], log_dir: Path) -> Server:
    """Starts the setup's processes, each in its own process group, waits until its port answers."""
    port = free_port()
    env = {**os.environ, **env, "DEBUG": "1"}
    env.setdefault("SECRET_KEY", "run-load-benchmark-secret-key-not-for-production-use")
    log = open(log_dir / f"run_load_{name}_{port}.log", "w")  # noqa: SIM115 - lives as long as the server
    processes: list[subprocess.Popen] = []
    for command, extra_env in SETUPS[name]("127.0.0.1", port):
        processes.append(
            subprocess.Popen(
                command,
                env={**env, **extra_env},
                cwd=BASE_DIR,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            subprocess.run(
                ["curl", "-sf", "-o", "/dev/null", f"http://127.0.0.1:{port}/api/v1/health"],
                check=True,
                timeout=5,
            )
            return Server(name, f"http://127.0.0.1:{port}", processes)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            if any(process.poll() is not None for process in processes):
                raise SystemExit(f"{name} exited; see {log.name}") from None
            time.sleep(0.3)
    raise SystemExit(f"{name} did not answer in 60 s; see {log.name}")


def stop_server(server: Server) -> None:
    for process in server.processes:
        os.killpg(process.pid, signal.SIGTERM)
    for process in server.processes:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def visible_post_ids(tokens: list[str], per_user: int) -> list[list[int]]:
    """For each token's user, published posts of other people they may see, at random."""
    from rest_framework_simplejwt.tokens import AccessToken

    from social.models import PostStatus, User
    from social.selectors import visible_posts

    chosen = []
    for token in tokens:
        user = User.objects.get(pk=AccessToken(token)["user_id"])
        ids = list(
            visible_posts(viewer=user, annotate_viewer=False)
            .filter(status=PostStatus.PUBLISHED)
            .exclude(author=user)
            .values_list("id", flat=True)[:2000]
        )
        chosen.append(random.Random(user.pk).sample(ids, per_user))
    return chosen


def run_wrk(url: str, tokens: list[str], posts: list[list[int]], seconds: float) -> Result:
    with (
        tempfile.NamedTemporaryFile("w", suffix=".lua") as script_file,
        tempfile.NamedTemporaryFile("r", suffix=".txt") as latency_file,
    ):
        script_file.write(
            WRK_SCRIPT
            % {
                "tokens": ", ".join(json.dumps(token) for token in tokens),
                "posts": ", ".join("{" + ", ".join(map(str, ids)) + "}" for ids in posts),
                "latency_file": latency_file.name,
            }
        )
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


def cpu_seconds(groups: list[int], postmaster: int | None) -> float:
    """CPU seconds (user + system) used so far by the processes in these process groups and by the
    PostgreSQL server whose postmaster is given, its ended backends included. Read from /proc."""
    ticks, used = os.sysconf("SC_CLK_TCK"), 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        parent, group, own = int(fields[1]), int(fields[2]), int(fields[11]) + int(fields[12])
        if group in groups or (postmaster and parent == postmaster):
            used += own
        elif postmaster and int(entry) == postmaster:
            used += own + int(fields[13]) + int(fields[14])
    return used / ticks


def postmaster_pid() -> int | None:
    pid_file = Path(os.environ["DATA_DIR"]) / "postgres" / "postmaster.pid"
    return int(pid_file.read_text().split()[0]) if pid_file.exists() else None


@dataclass
class Turn:
    result: Result
    cpu_s: float

    def summary(self) -> str:
        result = self.result
        p50, p99 = percentile(result.latencies_us, 0.5) / 1000, percentile(result.latencies_us, 0.99) / 1000
        errors = result.non_200 + result.socket_errors
        cpu_ms = self.cpu_s * 1000 / max(1, result.requests)
        return f"{result.rate:7.0f} {p50:7.1f} {p99:7.1f} {cpu_ms:7.1f} {errors:6d}"


class Ratio:
    """The second setup against the first: requests/s, and how many times shorter its p99 is."""

    def __init__(self, first: Result, second: Result):
        self.rate = second.rate / first.rate
        self.p99 = percentile(first.latencies_us, 0.99) / percentile(second.latencies_us, 0.99)

    def __str__(self) -> str:
        return f"requests/s x{self.rate:.1f}, p99 {self.p99:.1f} times shorter"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10, help="length of one setup's turn")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--warmup", type=float, default=5, help="seconds of each setup before measuring")
    parser.add_argument("--setups", default="old,new", help=f"comma-separated, of {', '.join(SETUPS)}")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian: apt-get install wrk)")
    names = args.setups.split(",")
    with ExitStack() as stack:
        env = start_django(stack, "/tmp/run-bench")
        tokens = bench_tokens(CONNECTIONS)
        posts = visible_post_ids(tokens, per_user=20)
        servers = []
        for name in names:
            servers.append(start_server(name, env, Path(tempfile.gettempdir())))
            stack.callback(stop_server, servers[-1])
        for server in servers:
            run_wrk(server.url, tokens, posts, args.warmup)
        postmaster = postmaster_pid()
        totals = {server.name: Turn(Result(), 0.0) for server in servers}
        print(
            f"wrk, {CONNECTIONS} connections, the mix of ten requests; {args.seconds:g} s per turn; "
            f"{os.cpu_count()} cores; load average before: {os.getloadavg()[0]:.1f}"
        )
        print("CPU: ms per request of the setup's processes and PostgreSQL")
        header = f"{'req/s':>7s} {'p50 ms':>7s} {'p99 ms':>7s} {'CPU ms':>7s} {'errors':>6s}"
        print(f"{'':6s}" + " ".join(f"{name:>7s}{header}" for name in names))
        ratios = []
        for round_number in range(1, args.rounds + 1):
            turns = {}
            # Alternate who goes first, so that neither always follows the other's tail.
            for server in servers if round_number % 2 else servers[::-1]:
                groups = [process.pid for process in server.processes]
                before = cpu_seconds(groups, postmaster)
                result = run_wrk(server.url, tokens, posts, args.seconds)
                turns[server.name] = Turn(result, cpu_seconds(groups, postmaster) - before)
                totals[server.name].result.add(result)
                totals[server.name].cpu_s += turns[server.name].cpu_s
            line = f"{round_number:5d} " + " ".join(f"{'':7s}{turns[name].summary()}" for name in names)
            if len(names) == 2:
                ratios.append(Ratio(*(turns[name].result for name in names)))
                line += f"  {names[1]}/{names[0]} {ratios[-1]}"
            print(line)
        print("all   " + " ".join(f"{'':7s}{totals[name].summary()}" for name in names))
        print(f"load average after: {os.getloadavg()[0]:.1f}")
    if ratios:
        print(f"{names[1]} / {names[0]}, all rounds: {Ratio(*(totals[name].result for name in names))}")
        print(
            f"  per round: requests/s x{min(r.rate for r in ratios):.1f}-{max(r.rate for r in ratios):.1f}, "
            f"p99 {min(r.p99 for r in ratios):.1f}-{max(r.p99 for r in ratios):.1f} times shorter"
        )


if __name__ == "__main__":
    main()

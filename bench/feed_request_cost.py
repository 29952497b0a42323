"""What one request costs in CPU, without an HTTP server or a load generator in the way.

    DATA_DIR=/tmp/social-bench .venv/bin/python bench/feed_request_cost.py --requests 3000

Calls the WSGI application in this process (every middleware, DRF, the token's user, the view)
for `GET /api/v1/me` (the baseline) and both feed tabs, as the 32 seeded users who follow the
most people, each following `next_cursor` for `--pages-per-chain` pages (3) as `feed_load.py`'s
clients do. For each scenario it prints this process's CPU time per request and that of its
PostgreSQL backend (read from /proc), best of `--repeat` runs: far steadier than a load run on
this machine, whose speed drifts from minute to minute, so it is the figure to compare two
versions of the code by (run it in each checkout, on the same database, one after the other).
`--compare-rendering` measures the feeds rendered by PostgreSQL against the Python rendering in
one process, taking turns run by run (`FEED_RENDER_IN_DATABASE`); `--compare-authors-kept` measures
for_you with the followed authors' newest posts kept by the process against reading them for every
request (`social.feed.AuthorsNewest`: its worst case, when no other follower of the same authors
started a chain in the last seconds).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import quote
from wsgiref.util import setup_testing_defaults

from feed_load import CONNECTIONS, PAGES_PER_CHAIN, SCENARIOS, bench_tokens
from harness import start_django


def backend_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Clients:
    """CONNECTIONS signed-in clients, each reading a chain of pages of one scenario in turn."""

    def __init__(self, application, tokens: list[str], scenario: str, pages_per_chain: int):
        self.application = application
        self.tokens = tokens
        self.path, self.follow_cursor = SCENARIOS[scenario]
        self.pages_per_chain = pages_per_chain
        # Staggered over a chain's pages, as feed_load's clients are.
        self.cursors: list[str | None] = [None] * len(tokens)
        self.pages = [index % pages_per_chain for index in range(len(tokens))]

    def request(self, index: int) -> None:
        client = index % len(self.tokens)
        path, _, query = self.path.partition("?")
        cursor = self.cursors[client]
        if cursor:
            query += "&cursor=" + quote(cursor)
        environ = {
            "REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": query,
            "HTTP_HOST": "127.0.0.1", "HTTP_AUTHORIZATION": f"Bearer {self.tokens[client]}",
        }  # fmt: skip
        setup_testing_defaults(environ)
        statuses: list[str] = []
        response = self.application(environ, lambda status, headers, exc_info=None: statuses.append(status))
        try:
            body = b"".join(response)
        finally:
            response.close()
        if not statuses[0].startswith("200"):
            raise SystemExit(f"{path}?{query} answered {statuses[0]}: {body[:300]!r}")
        if self.follow_cursor:
            self.pages[client] += 1
            next_cursor = json.loads(body)["next_cursor"]
            keep = next_cursor and self.pages[client] < self.pages_per_chain
            self.cursors[client] = next_cursor if keep else None
            if not keep:
                self.pages[client] = 0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=3000, help="requests per scenario and run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per scenario (the best is printed)")
    parser.add_argument("--scenarios", default="me,following,for_you")
    parser.add_argument("--pages-per-chain", type=int, default=PAGES_PER_CHAIN)
    comparisons = parser.add_mutually_exclusive_group()
    comparisons.add_argument(
        "--compare-rendering",
        action="store_true",
        help="the feeds rendered by PostgreSQL and by Python (FEED_RENDER_IN_DATABASE), taking turns",
    )
    comparisons.add_argument(
        "--compare-authors-kept",
        action="store_true",
        help="for_you with the followed authors' newest posts kept by the process (as served) and "
        "read again for every request (as when no other follower of theirs came by), taking turns",
    )
    args = parser.parse_args()
    # As a server runs it: one persistent connection (whose backend's CPU is read), no request log
    # line on the terminal.
    os.environ["DB_CONN_MAX_AGE"] = str(24 * 3600)
    with ExitStack() as stack:
        start_django(stack, "/tmp/social-bench")
        import logging

        from django.conf import settings
        from django.core.handlers.wsgi import WSGIHandler
        from django.db import connection

        from social.feed import authors_newest

        settings.ALLOWED_HOSTS = ["127.0.0.1"]
        logging.getLogger("request").setLevel(logging.WARNING)
        application = WSGIHandler()
        tokens = bench_tokens(CONNECTIONS)
        # (name suffix, FEED_RENDER_IN_DATABASE, whether the kept authors are dropped before each request)
        variants = [("", True, False)]
        if args.compare_rendering:
            variants = [(" (db)", True, False), (" (py)", False, False)]
        if args.compare_authors_kept:
            variants = [(" (kept)", True, False), (" (read)", True, True)]
        results = {}
        for scenario in args.scenarios.split(","):
            clients = Clients(application, tokens, scenario, args.pages_per_chain)
            for index in range(300):  # warm-up: prepared statements, caches, the shared pool
                clients.request(index)
            # The variants take turns run by run, so that the machine's drift weighs on each alike.
            for _run in range(args.repeat):
                for suffix, render_in_database, drop_authors in variants:
                    settings.FEED_RENDER_IN_DATABASE = render_in_database
                    with connection.cursor() as cursor:
                        cursor.execute("SELECT pg_backend_pid()")
                        backend = cursor.fetchone()[0]
                    python_before, backend_before = time.process_time(), backend_cpu_seconds(backend)
                    for index in range(args.requests):
                        if drop_authors:
                            authors_newest.forget()
                        clients.request(index)
                    python_ms = (time.process_time() - python_before) * 1000 / args.requests
                    backend_ms = (backend_cpu_seconds(backend) - backend_before) * 1000 / args.requests
                    best = results.get(scenario + suffix)
                    if best is None or python_ms + backend_ms < sum(best):
                        results[scenario + suffix] = (python_ms, backend_ms)
    baseline = next((sum(cost) for name, cost in results.items() if name.startswith("me")), None)
    print(f"CPU ms per request, best of {args.repeat} runs of {args.requests}; {os.cpu_count()} cores")
    print(f"{'scenario':15s} {'python':>8s} {'postgres':>9s} {'total':>8s} {'vs me':>6s}")
    for scenario, (python_ms, backend_ms) in results.items():
        ratio = baseline / (python_ms + backend_ms) if baseline else float("nan")
        print(f"{scenario:15s} {python_ms:8.3f} {backend_ms:9.3f} {python_ms + backend_ms:8.3f} {ratio:6.2f}")


if __name__ == "__main__":
    main()

"""Fault injection on the real stack: nothing lost, nothing stuck, nothing duplicated, clean answers.

    .venv/bin/python bench/faults/run.py                      # every scenario
    .venv/bin/python bench/faults/run.py broker-pause db-restart
    .venv/bin/python bench/faults/run.py --keep worker-kill   # keep the stack's folder and logs

Each scenario starts its own PostgreSQL, redis-server, ASGI server, two Celery workers and
`manage.py run_periodic` in a temporary folder under /tmp, drives three clients and a /health poller
over HTTP, injects its fault, and checks the outcome (README.md beside this file). It prints a
table and exits 1 when any scenario found a problem; the folder of a failed scenario is kept.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from scenarios import SCENARIOS, Result, run, settings_line  # noqa: E402

COUNTED = ("2xx", "4xx", "503", "500", "timeout", "refused", "broken")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("scenarios", nargs="*", help=f"any of {', '.join(SCENARIOS)} (default: all)")
    parser.add_argument("--keep", action="store_true", help="keep every stack's folder (logs, data)")
    parser.add_argument(
        "--server",
        choices=["make-run", "uvicorn", "granian"],
        default="make-run",
        help="make-run: the server `make run` starts (config.services.web_server, or uvicorn where "
        "there is none; the default); uvicorn: uvicorn + config.asgi; granian: granian + config.wsgi "
        "with DB_CONN_MAX_AGE=60, the README's production command",
    )
    args = parser.parse_args()
    names = args.scenarios or list(SCENARIOS)
    unknown = [name for name in names if name not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    print(f"fault settings: {settings_line()}; client timeout 10 s; server {args.server}", flush=True)
    # The tiny model set is built once and shared by the scenarios' workers.
    with tempfile.TemporaryDirectory(prefix="rf-faults-models-") as models:
        results = []
        for name in names:
            began = time.monotonic()
            result = run(SCENARIOS[name], tiny_cache=Path(models), keep=args.keep, server=args.server)
            result.notes.append(f"scenario took {time.monotonic() - began:.0f} s")
            results.append(result)
            report(result)
    print()
    print(table(results))
    return 0 if all(result.ok for result in results) else 1


def report(result: Result) -> None:
    print(f"-- {result.name}: {'ok' if result.ok else 'PROBLEMS'}")
    for note in result.notes:
        print(f"   note: {note}")
    for problem in result.problems:
        print(f"   PROBLEM: {problem}")
    if result.logs:
        print(f"   logs: {result.logs}")
    sys.stdout.flush()


def _counts(counts) -> str:
    shown = [f"{key} {counts[key]}" for key in COUNTED if counts.get(key)]
    shown += [f"{key} {value}" for key, value in counts.items() if key not in COUNTED]
    return ", ".join(shown) or "-"


def table(results: list[Result]) -> str:
    header = (
        "scenario",
        "jobs",
        "succeeded",
        "failed",
        "blocked",
        "in flight",
        "max s to final",
        "answers during the outage",
        "POST 202 in outage",
        "verdict",
    )
    rows = [header]
    for r in results:
        rows.append(
            (
                r.name,
                str(r.requested),
                str(r.by_status.get("succeeded", 0)),
                str(r.by_status.get("failed", 0)),
                str(r.by_status.get("blocked", 0)),
                str(r.by_status.get("queued", 0) + r.by_status.get("running", 0)),
                f"{r.max_final_s:.1f}",
                _counts(r.outage_counts),
                str(r.outage_posts_202) if r.name.startswith("broker") else "-",
                "ok" if r.ok else f"{len(r.problems)} problem(s)",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [" | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "-+-".join("-" * width for width in widths))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

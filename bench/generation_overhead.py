"""Time per generation job spent outside the pipeline call, through a real broker and worker.

    DATA_DIR=/tmp/generation-bench .venv/bin/python bench/generation_overhead.py --jobs 20

Without DATABASE_URL it starts the embedded PostgreSQL and Redis in DATA_DIR and migrates; it then
starts one real `celery worker -Q gpu --pool solo` process with the configured backend (the tiny one
unless GENERATION_BACKEND says otherwise), waits until it answers a ping, and submits `--jobs` jobs
one after another through `generation.services.request_generation` (each waits for the previous to
finish, so no job waits behind another). For every job the worker records the seconds of the
pipeline call (`render_s`) and of the stages around it; the script reports, per job:

- end to end: from the job row's creation to its `finished_at`;
- pipeline call: `render_s`;
- outside the pipeline: the difference (queueing, conditioning, labels, watermark, encoding,
  storage, database), split into the stages the worker measured and "queue + claim" (from the
  row's creation to the worker's claim);

with the median and p90 over the jobs, and the ratio of end to end to the bare pipeline call.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack

from harness import BASE_DIR, start_django


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--duration", type=int, default=3)
    args = parser.parse_args()
    with ExitStack() as stack:
        start_django(stack, "/tmp/generation-bench", DAILY_LIMIT_PRO="100000")
        from config.celery import app
        from generation import services
        from generation.models import Generation
        from social.models import User

        user, _ = User.objects.get_or_create(username="bench-generation", defaults={"tier": "pro"})
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", "gpu", "--pool", "solo"]
            + ["--hostname", f"bench-{os.getpid()}@local", "--loglevel", "WARNING"],
            cwd=BASE_DIR,
            env=dict(os.environ),
        )
        stack.callback(lambda: (worker.terminate(), worker.wait(timeout=30)))
        deadline = time.monotonic() + 120
        while not app.control.ping(destination=[f"bench-{os.getpid()}@local"], timeout=1.0):
            if time.monotonic() > deadline:
                raise SystemExit("the worker did not start")
        rows = []
        for index in range(args.jobs + 1):
            job, _ = services.request_generation(
                user=user,
                request=services.GenerationRequest(
                    prompt=f"a lantern floating down a river, take {index} of {time.time():.0f}",
                    duration_s=args.duration,
                    aspect_ratio="9:16",
                    seed=index,
                ),
            )
            while True:
                job.refresh_from_db()
                # The worker writes its stage timings just after the job's final state.
                if job.status not in ("queued", "running") and (
                    job.status != "succeeded" or "store_s" in job.timings
                ):
                    break
                time.sleep(0.02)
            if job.status != "succeeded":
                raise SystemExit(f"job {job.pk} {job.status}: {job.error_code} {job.error_message}")
            if index == 0:
                continue  # the first job warms the worker's caches and allocator
            total = (job.finished_at - job.created_at).total_seconds()
            rows.append(
                {"total": total, "queue_s": (job.started_at - job.created_at).total_seconds(), **job.timings}
            )
        Generation.objects.filter(user=user).delete()

    render = [row["render_s"] for row in rows]
    outside = [row["total"] - row["render_s"] for row in rows]
    print(f"jobs: {len(rows)} (after one warm-up), backend {os.environ.get('GENERATION_BACKEND', 'tiny')}")
    print(
        f"end to end     median {statistics.median(r['total'] for r in rows):.3f} s  p90 {percentile([r['total'] for r in rows], 0.9):.3f} s"
    )
    print(f"pipeline call  median {statistics.median(render):.3f} s  p90 {percentile(render, 0.9):.3f} s")
    print(f"outside it     median {statistics.median(outside):.3f} s  p90 {percentile(outside, 0.9):.3f} s")
    for stage in ("prepare_s", "finish_s", "store_s"):
        values = [row.get(stage, 0.0) for row in rows]
        print(f"  {stage:<12} median {statistics.median(values):.3f} s")
    queue = [
        row["total"] - sum(row.get(k, 0.0) for k in ("prepare_s", "render_s", "finish_s", "store_s"))
        for row in rows
    ]
    print(f"  {'queue+claim':<12} median {statistics.median(queue):.3f} s")
    print(
        f"end to end / pipeline call: {statistics.median(r['total'] for r in rows) / statistics.median(render):.2f}x"
    )


if __name__ == "__main__":
    main()

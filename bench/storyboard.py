"""A 4-shot storyboard on one gpu-queue worker, then on two: the wall time from request to post.

    DATA_DIR=/tmp/storyboard-bench .venv/bin/python bench/storyboard.py [--repeat 3] [--steps 30]

Real Celery workers on the embedded Redis, as production runs them: `--workers` processes consuming
the `gpu` queue (one per GPU; each limited to one CPU thread here, as each would have its own GPU)
and one consuming `default` for the join. Each storyboard is requested through `request_generation`
(the outbox sends the chord) and timed until its post is stored. The tiny backend renders each shot
with `--steps` denoising steps, so rendering is most of a shot, as it is with real models. The first
storyboard of each configuration warms the workers up (model load) and is not counted. Printed: the
median wall time with one and with two gpu workers, and their ratio (goal: at most 0.65).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack
from datetime import date

from harness import BASE_DIR, start_django

SHOTS = [
    ("a lighthouse on a cliff at dusk", 2),
    ("the keeper climbs the stairs", 2),
    ("the lamp turns over the storm", 2),
    ("a ship finds the harbour", 2),
]


def start_worker(name: str, queues: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", queues, "--pool", "solo"]
        + ["--hostname", f"{name}-{os.getpid()}@bench", "--loglevel", "WARNING", "--without-mingle"]
        + ["--without-gossip", "--without-heartbeat"],
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    with ExitStack() as stack:
        worker_env = start_django(stack, "/tmp/storyboard-bench", GENERATION_STEPS=str(args.steps))
        from generation import services
        from generation.models import Generation, GenerationStatus
        from generation.storyboards import ShotRequest
        from social.models import User
        from social.services import register_user

        user = User.objects.filter(username="storyboard_bench").first() or register_user(
            username="storyboard_bench", password="bench-Password-1", birth_date=date(1990, 1, 1)
        )
        User.objects.filter(pk=user.pk).update(tier="pro")
        user.refresh_from_db()
        env = {
            **os.environ,
            **worker_env,
            "GENERATION_STEPS": str(args.steps),
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
        }

        def storyboard_seconds(seed: int) -> float:
            clock = time.perf_counter()
            job, _ = services.request_generation(
                user=user,
                request=services.GenerationRequest(
                    prompt="",
                    duration_s=0,
                    aspect_ratio="9:16",
                    shots=[ShotRequest(prompt=prompt, duration_s=seconds) for prompt, seconds in SHOTS],
                    seed=seed,
                ),
            )
            while True:
                job.refresh_from_db()
                if job.status not in ("queued", "running"):
                    break
                time.sleep(0.05)
            assert job.status == GenerationStatus.SUCCEEDED, (job.error_code, job.error_message)
            return time.perf_counter() - clock

        medians = {}
        for count in (1, 2):
            workers = [start_worker(f"gpu{index}", "gpu", env) for index in range(count)]
            workers.append(start_worker("join", "default", env))
            try:
                # Warm-up: every worker loads its models (and the join worker its libraries).
                storyboard_seconds(seed=1000 + count)
                times = []
                for round_index in range(args.repeat):
                    seconds = storyboard_seconds(seed=round_index)
                    times.append(seconds)
                    print(
                        f"  {count} gpu worker(s), round {round_index + 1}: {seconds:.2f} s",
                        file=sys.stderr,
                        flush=True,
                    )
                medians[count] = statistics.median(times)
            finally:
                for process in workers:
                    process.terminate()
                for process in workers:
                    process.wait(timeout=60)
            Generation.objects.filter(user=user).delete()
        print(
            f"4-shot storyboard ({sum(s for _, s in SHOTS)} s, tiny backend, {args.steps} steps), median of {args.repeat}:"
        )
        print(
            f"  one gpu worker {medians[1]:.2f} s; two gpu workers {medians[2]:.2f} s; ratio {medians[2] / medians[1]:.2f}"
        )


if __name__ == "__main__":
    main()

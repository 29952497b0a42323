"""A real Celery worker process killed with SIGKILL in the middle of a job."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import pytest
from django.db import connection

from generation import services
from generation.models import Generation, GenerationStatus
from social.models import Post

pytestmark = pytest.mark.django_db(transaction=True)

BASE_DIR = Path(__file__).resolve().parents[2]


def worker_env(**extra) -> dict:
    url = urlparse(os.environ["DATABASE_URL"])
    test_db = urlunparse(url._replace(path="/" + connection.settings_dict["NAME"]))
    return {**os.environ, "DATABASE_URL": test_db, **extra}


def start_worker(name: str, log_dir: Path, *, queues: str = "gpu", **extra) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", queues, "--pool", "solo"]
        + ["--hostname", f"{name}-{os.getpid()}@test", "--loglevel", "WARNING", "--without-mingle"]
        + ["--without-gossip", "--without-heartbeat"],
        cwd=BASE_DIR,
        env=worker_env(**extra),
        stdout=subprocess.DEVNULL,
        stderr=open(log_dir / f"{name}.log", "w"),  # noqa: SIM115 - the child process owns it
    )


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.kill()
    process.wait(timeout=30)


def test_killed_worker_leaves_a_job_that_is_retried_into_exactly_one_post(user, settings, tmp_path):
    job, _ = services.request_generation(
        user=user,
        request=services.GenerationRequest(
            prompt="a slow sunrise over the sea", duration_s=2, aspect_ratio="1:1"
        ),
    )
    # Many steps make the render last long enough to kill the worker in the middle of it.
    doomed = start_worker("doomed", tmp_path, GENERATION_STEPS="900")
    try:
        wait_for(
            lambda: Generation.objects.filter(pk=job.pk, status="running", progress__gt=0).exists(),
            timeout=120,
            what="the job to start rendering",
        )
        os.kill(doomed.pid, signal.SIGKILL)
        doomed.wait(timeout=30)
    finally:
        stop(doomed)
    job.refresh_from_db()
    assert job.status == GenerationStatus.RUNNING and job.attempts == 1 and job.post_id is None

    settings.GENERATION_STALE_AFTER_S = 1
    time.sleep(1.5)
    assert services.reap_stale_generations() == [job.pk]
    assert Generation.objects.get(pk=job.pk).status == GenerationStatus.QUEUED

    survivor = start_worker("survivor", tmp_path)
    try:
        finished = wait_for(
            lambda: Generation.objects.filter(pk=job.pk, status__in=["succeeded", "failed"]).first(),
            timeout=120,
            what="the retried job to finish",
        )
    finally:
        stop(survivor)
    assert finished.status == GenerationStatus.SUCCEEDED, (tmp_path / "survivor.log").read_text()[-3000:]
    assert finished.attempts == 2
    assert Post.objects.filter(author=user).count() == 1


def test_a_job_whose_workers_keep_dying_fails_with_a_reason(user, settings):
    job, _ = services.request_generation(
        user=user,
        request=services.GenerationRequest(prompt="a stubborn job", duration_s=2, aspect_ratio="1:1"),
    )
    settings.GENERATION_MAX_ATTEMPTS = 2
    settings.GENERATION_STALE_AFTER_S = 60
    stale = time.time() - 120
    from datetime import UTC, datetime

    Generation.objects.filter(pk=job.pk).update(
        status="running", attempts=2, heartbeat_at=datetime.fromtimestamp(stale, tz=UTC)
    )
    assert services.reap_stale_generations() == []
    job.refresh_from_db()
    assert job.status == GenerationStatus.FAILED and job.error_code == "worker_lost"
    assert "2 attempts" in job.error_message

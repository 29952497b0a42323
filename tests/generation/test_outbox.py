"""The job row is the source of truth: a job is committed with its dispatch pending and sent by the
outbox, so a broker that is down, paused or restarted empty loses no job and holds no request."""

import datetime as dt
import time

import pytest
import redis
from django.conf import settings
from django.utils import timezone

from generation import services
from generation.models import Generation, GenerationStatus
from tests.broker import broker_at, closed_port
from tests.conftest import client_for

pytestmark = pytest.mark.django_db(transaction=True)

BODY = {"prompt": "a lighthouse in a storm", "duration_s": 1, "aspect_ratio": "1:1"}


def broker_queue_length(queue: str = "gpu") -> int:
    return redis.Redis.from_url(settings.CELERY_BROKER_URL).llen(queue)


@pytest.fixture
def empty_gpu_queue():
    """The real broker's `gpu` queue, emptied before and after (as a broker restarted empty)."""
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    broker.delete("gpu")
    yield broker
    broker.delete("gpu")


def test_a_request_is_accepted_while_the_broker_is_down_and_sent_once_it_is_back(user, empty_gpu_queue):
    with broker_at(f"redis://127.0.0.1:{closed_port()}/0"):
        response = client_for(user).post("/api/v1/generations", BODY, format="json")
        started = time.monotonic()
        assert services.dispatch_generations() == []
        elapsed = time.monotonic() - started
    assert response.status_code == 202, response.json()
    assert elapsed < 3, elapsed  # a send attempt does not wait out the broker
    job = Generation.objects.get(pk=response.json()["id"])
    assert job.status == GenerationStatus.QUEUED and job.dispatched_at is None
    assert broker_queue_length() == 0

    assert services.dispatch_generations() == [job.pk]
    job.refresh_from_db()
    assert job.dispatched_at is not None
    assert broker_queue_length() == 1
    # Sent jobs are not sent again until they may have been lost.
    assert services.dispatch_generations() == []
    assert broker_queue_length() == 1


def test_a_message_lost_with_the_broker_is_sent_again(user, empty_gpu_queue, settings):
    job, _ = services.request_generation(user=user, request=services.GenerationRequest(**BODY))
    job.refresh_from_db()
    assert job.dispatched_at is not None and broker_queue_length() == 1
    empty_gpu_queue.delete("gpu")  # the broker restarted and kept nothing
    assert services.dispatch_generations() == []  # not yet: it may still be waiting for a worker
    settings.GENERATION_REDISPATCH_AFTER_S = 60
    Generation.objects.filter(pk=job.pk).update(dispatched_at=timezone.now() - dt.timedelta(seconds=61))
    assert services.dispatch_generations() == [job.pk]
    assert broker_queue_length() == 1


def test_a_job_requeued_by_the_reaper_goes_back_through_the_outbox(user, empty_gpu_queue, settings):
    job, _ = services.request_generation(user=user, request=services.GenerationRequest(**BODY))
    empty_gpu_queue.delete("gpu")
    settings.GENERATION_STALE_AFTER_S = 60
    Generation.objects.filter(pk=job.pk).update(
        status="running", attempts=1, heartbeat_at=timezone.now() - dt.timedelta(seconds=120)
    )
    with broker_at(f"redis://127.0.0.1:{closed_port()}/0"):
        assert services.reap_stale_generations() == [job.pk]
    job.refresh_from_db()
    assert job.status == GenerationStatus.QUEUED and job.dispatched_at is None  # kept, not lost
    assert services.dispatch_generations() == [job.pk]
    assert broker_queue_length() == 1


def test_two_dispatchers_never_send_a_job_twice(user, empty_gpu_queue):
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connection

    with broker_at(f"redis://127.0.0.1:{closed_port()}/0"):
        jobs = [
            services.request_generation(user=user, request=services.GenerationRequest(**BODY))[0]
            for _ in range(2)
        ]

    def dispatch():
        try:
            return services.dispatch_generations()
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=2) as pool:
        sent = [job_id for ids in pool.map(lambda _: dispatch(), range(2)) for job_id in ids]
    assert sorted(sent) == sorted(job.pk for job in jobs)
    assert broker_queue_length() == 2

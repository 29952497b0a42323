"""A stitch through the real broker: the request commits, the outbox sends it to the default (CPU)
queue, and a real Celery worker consuming only that queue joins the posts into a draft."""

import tempfile
from pathlib import Path

import numpy as np
import pytest
import redis
from django.conf import settings

from generation import encoding
from generation.models import Generation, GenerationStatus
from social.models import Post
from social.services import create_post
from tests.conftest import client_for
from tests.generation.test_worker_killed import start_worker, stop, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def published_clip(author, seconds: int, shade: int) -> Post:
    frames = np.full((seconds * 8, 80, 48, 3), shade, dtype=np.uint8)
    frames[:, 20:60, 10:38] = 255 - shade  # something to see
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "clip.mp4"
        path.write_bytes(encoding.encode_mp4(frames, fps=8))
        return create_post(author=author, video=str(path), prompt=f"shade {shade}", status="published")


def test_a_stitch_is_sent_to_the_cpu_queue_and_joined_by_a_worker_of_that_queue(user, make_user, tmp_path):
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    broker.delete("default", "gpu")
    first, second = published_clip(make_user("bob"), 1, 40), published_clip(make_user("carol"), 2, 200)
    response = client_for(user).post(
        "/api/v1/posts/stitch", {"post_ids": [first.pk, second.pk]}, format="json"
    )
    assert response.status_code == 202, response.json()
    job = Generation.objects.get(pk=response.json()["id"])
    assert job.dispatched_at is not None  # sent when the request committed
    assert broker.llen("default") == 1 and broker.llen("gpu") == 0
    worker = start_worker("stitcher", tmp_path, queues="default")
    try:
        finished = wait_for(
            lambda: Generation.objects.filter(
                pk=job.pk, status__in=["succeeded", "failed", "blocked"]
            ).first(),
            timeout=120,
            what="the stitch to finish",
        )
    finally:
        stop(worker)
    assert finished.status == GenerationStatus.SUCCEEDED, (tmp_path / "stitcher.log").read_text()[-3000:]
    post = Post.objects.get(pk=finished.post_id)
    assert post.source_ids == [first.pk, second.pk] and post.status == "draft"
    assert post.duration_s == pytest.approx(3, abs=1 / 8)
    assert not post.has_audio  # silent sources make a silent stitch
    broker.delete("default", "gpu")

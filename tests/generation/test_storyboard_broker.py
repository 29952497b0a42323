"""Storyboards through the real broker and real Celery workers: the chord's shot tasks on the gpu
queue, its join on the default queue; consent withdrawn mid-shot, cancelling, and a worker killed
in the middle of a shot."""

import json
import os
import signal
import time

import pytest
import redis
from django.conf import settings

from cameo import services as cameo_services
from cameo.models import Permission
from generation import encoding, services, sound, worker
from generation.models import Generation, GenerationShot, GenerationStatus
from social.models import Post
from tests.conftest import client_for
from tests.generation.test_worker_killed import start_worker, stop, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

SHOTS = [
    {"prompt": "a paper boat on a rainy street", "duration_s": 1},
    {"prompt": "the boat reaches the sea", "duration_s": 1},
    {"prompt": "a gull lands on the boat", "duration_s": 1},
]
# Enough steps that a shot renders for minutes: long enough to act in the middle of it.
SLOW = {"GENERATION_STEPS": "900"}


@pytest.fixture
def broker():
    connection = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    connection.delete("default", "gpu")
    yield connection
    connection.delete("default", "gpu")


def queued_tasks(broker, queue: str) -> list[str]:
    """The names of the tasks waiting in a queue (kombu's Redis messages carry them in headers)."""
    return [json.loads(message)["headers"]["task"] for message in broker.lrange(queue, 0, -1)]


def join_sent(broker):
    """Whether the storyboard's join was sent: a chord sends it once every shot task returned."""
    return "generation.tasks.join_clips" in queued_tasks(broker, "default") or None


def storyboard(user, shots) -> Generation:
    response = client_for(user).post(
        "/api/v1/generations", {"shots": shots, "aspect_ratio": "9:16"}, format="json"
    )
    assert response.status_code == 202, response.json()
    return Generation.objects.get(pk=response.json()["id"])


def rendering(shot_filter) -> GenerationShot:
    return wait_for(
        lambda: GenerationShot.objects.filter(status="running", progress__gt=0, **shot_filter).first(),
        timeout=120,
        what="a shot to be rendering",
    )


def test_consent_withdrawn_during_its_shot_blocks_the_whole_storyboard(
    broker, user, make_user, alice_cameo, tmp_path
):
    bob = make_user("bob")
    job = storyboard(bob, [{**SHOTS[0], "cameo_ids": [str(alice_cameo.pk)]}, SHOTS[1]])
    assert queued_tasks(broker, "gpu") == ["generation.tasks.render_shot"] * 2  # the chord's shots
    gpu = start_worker("gpu", tmp_path, **SLOW)
    try:
        rendering({"generation": job, "index": 0})
        cameo_services.update_cameo(actor=user, cameo=alice_cameo, permission=Permission.ONLY_ME)
        job.refresh_from_db()
        assert job.status == GenerationStatus.BLOCKED and job.error_code == "consent_revoked"
        # Both shot tasks return (the stopped one and the one that finds nothing to do), which
        # completes the chord: its join is sent, and does nothing.
        wait_for(lambda: join_sent(broker), timeout=60, what="the chord to complete")
    finally:
        stop(gpu)
    assert set(job.shots.values_list("status", flat=True)) == {"cancelled"}
    assert worker.execute_generation(job.pk) is None
    assert not Post.objects.filter(author=bob).exists()


def test_a_cancelled_storyboard_leaves_no_shot_running(broker, user, tmp_path):
    job = storyboard(user, SHOTS)
    gpu = start_worker("gpu", tmp_path, **SLOW)
    try:
        shot = rendering({"generation": job})
        response = client_for(user).post(f"/api/v1/generations/{job.pk}/cancel")
        assert response.status_code == 200 and response.json()["status"] == "cancelled"
        # Every shot task has returned once the chord sends its join: the rendering one stopped
        # at its next step (minutes of steps were left), the queued ones did not start.
        wait_for(lambda: join_sent(broker), timeout=60, what="the chord to complete")
        stopped_at = GenerationShot.objects.get(pk=shot.pk).progress
        time.sleep(1)
        assert GenerationShot.objects.get(pk=shot.pk).progress == stopped_at
    finally:
        stop(gpu)
    assert set(job.shots.values_list("status", flat=True)) == {"cancelled"}
    assert broker.llen("gpu") == 0


def test_a_worker_killed_mid_shot_costs_that_shot_a_rerun_not_the_storyboard(
    broker, user, tiny_renderer, tmp_path, settings
):
    job, _ = services.request_generation(
        user=user,
        request=services.GenerationRequest(
            prompt="",
            duration_s=0,
            aspect_ratio="9:16",
            shots=[services_shot(shot) for shot in SHOTS],
        ),
        enqueue_job=False,
    )
    first = job.shots.get(index=0)
    worker.execute_shot(first.pk, renderer=tiny_renderer)  # rendered before the workers start
    services.enqueue_storyboard(job.pk)  # what the outbox sends: a chord of the shots still to render
    assert queued_tasks(broker, "gpu") == ["generation.tasks.render_shot"] * 2

    doomed = start_worker("doomed", tmp_path, **SLOW)
    try:
        rendering({"generation": job, "index": 1})
        os.kill(doomed.pid, signal.SIGKILL)
        doomed.wait(timeout=30)
    finally:
        stop(doomed)

    settings.GENERATION_STALE_AFTER_S = 1
    time.sleep(1.5)
    assert services.reap_stale_generations() == [job.pk]
    survivor = start_worker("survivor", tmp_path, queues="gpu,default")
    try:
        finished = wait_for(
            lambda: Generation.objects.filter(
                pk=job.pk, status__in=["succeeded", "failed", "blocked"]
            ).first(),
            timeout=180,
            what="the storyboard to finish",
        )
    finally:
        stop(survivor)
    assert finished.status == GenerationStatus.SUCCEEDED, (tmp_path / "survivor.log").read_text()[-3000:]
    assert dict(job.shots.values_list("index", "attempts")) == {0: 1, 1: 2, 2: 1}
    assert Post.objects.filter(author=user).count() == 1

    post = Post.objects.get(pk=finished.post_id)
    with post.video.open("rb") as handle:
        data = handle.read()
    video, track = encoding.decode_mp4(data), encoding.decode_audio(data)
    assert post.has_audio and len(video.frames) == 3 * settings.GENERATION_FPS
    assert abs(track.duration_s - len(video.frames) / video.fps) <= 1 / video.fps
    assert sound.find_ai_cue(track)


def services_shot(shot: dict):
    from generation.storyboards import ShotRequest

    return ShotRequest(**shot)
